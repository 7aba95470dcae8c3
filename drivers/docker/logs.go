package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

// maxLineBytes bounds a line kept in memory while waiting for its newline.
const maxLineBytes = 64 << 10

// followLogs publishes a container's stdout and stderr, line by line with the
// engine's timestamps, until the container stops (the stream ends) or the driver
// closes. since, when set, skips what came before (adoption without saved state);
// lines at or before the container's last published timestamp are never published
// twice. The returned channel is closed when the follower ends.
func (d *Driver) followLogs(spec drivers.DynoSpec, dynoName, id string, since time.Time) chan struct{} {
	done := make(chan struct{})
	if last := d.logState.get(id); last.After(since) {
		since = last
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(done)
		opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
		if !since.IsZero() {
			opts.Since = since.UTC().Format(time.RFC3339Nano)
		}
		rc, err := d.cli.ContainerLogs(d.ctx, id, opts)
		if err != nil {
			if d.ctx.Err() == nil {
				d.log.Warn("follow container output", "dyno", spec.Ref(), "container", id, "err", err)
			}
			return
		}
		defer rc.Close()
		stdout := &lineWriter{d: d, spec: spec, dyno: dynoName, id: id}
		stderr := &lineWriter{d: d, spec: spec, dyno: dynoName, id: id}
		_, err = stdcopy.StdCopy(stdout, stderr, rc)
		stdout.flush()
		stderr.flush()
		if err != nil && d.ctx.Err() == nil {
			d.log.Debug("container output ended", "dyno", spec.Ref(), "err", err)
		}
	}()
	return done
}

// lineWriter splits one stream of a container's output into lines
// ("<RFC3339Nano timestamp> <text>") and publishes each once.
type lineWriter struct {
	d    *Driver
	spec drivers.DynoSpec
	dyno string
	id   string
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.publish(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLineBytes {
		w.publish(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.publish(w.buf)
		w.buf = nil
	}
}

func (w *lineWriter) publish(raw []byte) {
	text := string(bytes.TrimSuffix(raw, []byte("\r")))
	at := time.Now().UTC()
	if i := bytes.IndexByte(raw, ' '); i > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(raw[:i])); err == nil {
			at, text = t, string(bytes.TrimSuffix(raw[i+1:], []byte("\r")))
			if !w.d.logState.advance(w.id, at) {
				return
			}
		}
	}
	w.d.opts.Logs.Publish(logs.Line{Time: at, App: w.spec.App, Env: w.spec.Env, Source: logs.SourceApp, Dyno: w.dyno, Text: text})
}

// logState is the timestamp of the last published line per container, saved to
// StateDir/docker-logs.json so a restarted daemon resumes each log without duplicates.
type logState struct {
	path  string // empty: kept in memory only
	mu    sync.Mutex
	last  map[string]time.Time
	dirty bool
}

const logStateFile = "docker-logs.json"

func loadLogState(dir string) (*logState, error) {
	s := &logState{last: make(map[string]time.Time)}
	if dir == "" {
		return s, nil
	}
	s.path = filepath.Join(dir, logStateFile)
	raw, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read log positions: %w", err)
	}
	if err := json.Unmarshal(raw, &s.last); err != nil {
		// Positions are an optimisation: start over rather than refuse to run.
		slog.Warn("ignoring corrupt log positions", "file", s.path, "err", err)
		s.last = make(map[string]time.Time)
	}
	return s, nil
}

func (s *logState) get(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[id]
}

// advance records t as the container's last line, unless it is not newer.
func (s *logState) advance(id string, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !t.After(s.last[id]) {
		return false
	}
	s.last[id] = t
	s.dirty = true
	return true
}

func (s *logState) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.last[id]; ok {
		delete(s.last, id)
		s.dirty = true
	}
}

// flush writes the positions when they changed (atomically: temp file and rename).
func (s *logState) flush() error {
	s.mu.Lock()
	if s.path == "" || !s.dirty {
		s.mu.Unlock()
		return nil
	}
	raw, err := json.Marshal(s.last)
	s.dirty = false
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode log positions: %w", err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("write log positions: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("write log positions: %w", err)
	}
	return nil
}

// flushLoop saves the positions every second until ctx ends.
func (s *logState) flushLoop(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.flush(); err != nil {
				log.Warn("save log positions", "err", err)
			}
		}
	}
}
