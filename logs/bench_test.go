package logs_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// writerEnv makes the test binary a dyno that writes that many lines to stdout as
// fast as it can (see TestMain), for the benchmarks' child process.
const writerEnv = "MANIFOLD_LOGS_BENCH_WRITER"

// benchLineBytes is the size of each line the writer prints, newline included: a
// typical router or app log line.
const benchLineBytes = 128

func TestMain(m *testing.M) {
	if n := os.Getenv(writerEnv); n != "" {
		os.Exit(writeLines(n))
	}
	os.Exit(m.Run())
}

// writeLines prints n lines of benchLineBytes to stdout.
func writeLines(n string) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	line := []byte("at=info method=GET path=/items/0000000000 host=shop.example.com request_id=0000 status=200 bytes=1234 service=12ms pad")
	line = append(line, bytes.Repeat([]byte{'.'}, benchLineBytes-1-len(line))...)
	line = append(line, '\n')
	for i := range count {
		strconv.AppendInt(line[31:31], int64(i), 10) // overwrite the item number in place
		if _, err := out.Write(line); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// benchReceiver is a TCP syslog receiver that counts bytes and messages: frames when
// framed is true, newline-terminated lines otherwise.
type benchReceiver struct {
	ln       net.Listener
	framed   bool
	bytes    atomic.Int64
	messages atomic.Int64
	corrupt  atomic.Int64
	wg       sync.WaitGroup
}

func startBenchReceiver(b *testing.B, framed bool) *benchReceiver {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := &benchReceiver{ln: ln, framed: framed}
	r.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Go(func() { r.serve(conn) })
		}
	})
	b.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *benchReceiver) serve(conn net.Conn) {
	defer conn.Close()
	in := bufio.NewReaderSize(conn, 256<<10)
	if !r.framed {
		buf := make([]byte, 256<<10)
		for {
			n, err := in.Read(buf)
			r.bytes.Add(int64(n))
			r.messages.Add(int64(bytes.Count(buf[:n], []byte{'\n'})))
			if err != nil {
				return
			}
		}
	}
	for {
		// LEN SP MSG: read the length, skip the message.
		digits, err := in.ReadSlice(' ')
		if err != nil {
			if !errors.Is(err, io.EOF) || len(digits) > 0 {
				r.corrupt.Add(1)
			}
			return
		}
		n, err := strconv.Atoi(string(digits[:len(digits)-1]))
		if err != nil || n <= 0 {
			r.corrupt.Add(1)
			return
		}
		if _, err := in.Discard(n); err != nil {
			r.corrupt.Add(1)
			return
		}
		r.bytes.Add(int64(len(digits) + n))
		r.messages.Add(1)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (r *benchReceiver) addr() string { return r.ln.Addr().String() }

// waitMessages polls (bounded) until n messages arrived.
func (r *benchReceiver) waitMessages(b *testing.B, n int64) {
	b.Helper()
	eventually(b, 60*time.Second, fmt.Sprintf("the receiver got %d messages", n), func() error {
		if got := r.messages.Load(); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// startWriter starts the dyno: this test binary writing n lines to a pipe.
func startWriter(b *testing.B, n int) (*exec.Cmd, io.ReadCloser) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd, stdout
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds MiB/s, lines/s and MiB per CPU-second of this process (the receiver's
// counting included, the writer child excluded) for lines of benchLineBytes.
func report(b *testing.B, lines int, wall, cpu time.Duration) {
	mib := float64(lines) * benchLineBytes / (1 << 20)
	b.ReportMetric(mib/wall.Seconds(), "MiB/s")
	b.ReportMetric(float64(lines)/wall.Seconds(), "lines/s")
	b.ReportMetric(mib/cpu.Seconds(), "MiB/cpu-s")
}

// BenchmarkDrainTCP measures a dyno writing lines as fast as it can through the
// logplex (read line by line, Publish, syslog+tcp drain with RFC 5424 octet-counted
// frames) to a TCP receiver, beside the same bytes piped straight to a TCP receiver.
// Every line is accounted for: sent + dropped == published, and the receiver got
// exactly the sent frames.
func BenchmarkDrainTCP(b *testing.B) {
	b.Run("manifold", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(benchLineBytes)
		receiver := startBenchReceiver(b, true)
		p := logs.New(logs.Options{Logger: discardLogger()})
		defer p.Close()
		if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "bench", URL: "syslog+tcp://" + receiver.addr()}}); err != nil {
			b.Fatal(err)
		}
		cpu0, start := cpuTime(b), time.Now()
		b.ResetTimer()
		cmd, stdout := startWriter(b, b.N)
		in := bufio.NewReaderSize(stdout, 64<<10)
		published := 0
		for {
			raw, err := in.ReadSlice('\n')
			if len(raw) > 0 {
				p.Publish(logs.Line{App: "shop", Env: "production", Source: logs.SourceApp, Dyno: "web.1", Text: string(bytes.TrimSuffix(raw, []byte{'\n'}))})
				published++
			}
			if err != nil {
				break // io.EOF; a long line (bufio.ErrBufferFull) cannot happen here
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("writer: %v", err)
		}
		var st logs.DrainStats
		eventually(b, 60*time.Second, "the drain flushed", func() error {
			if st = p.DrainStats()[0]; st.Buffered != 0 || receiver.messages.Load() != int64(st.Sent) {
				return fmt.Errorf("stats %+v, receiver %d", st, receiver.messages.Load())
			}
			return nil
		})
		b.StopTimer()
		wall, cpu := time.Since(start), cpuTime(b)-cpu0
		if published != b.N || st.Sent+st.Dropped != st.Published || st.Published < uint64(b.N) || receiver.corrupt.Load() != 0 {
			b.Fatalf("accounting: wrote %d, published %d, stats %+v, corrupt frames %d", b.N, published, st, receiver.corrupt.Load())
		}
		report(b, b.N, wall, cpu)
		b.ReportMetric(float64(st.Sent)*benchLineBytes/(1<<20)/wall.Seconds(), "sent-MiB/s")
		b.ReportMetric(100*float64(st.Dropped)/float64(st.Published), "drop-%")
	})

	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(benchLineBytes)
		receiver := startBenchReceiver(b, false)
		conn, err := net.Dial("tcp", receiver.addr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		cpu0, start := cpuTime(b), time.Now()
		b.ResetTimer()
		cmd, stdout := startWriter(b, b.N)
		if _, err := io.Copy(conn, stdout); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("writer: %v", err)
		}
		receiver.waitMessages(b, int64(b.N))
		b.StopTimer()
		report(b, b.N, time.Since(start), cpuTime(b)-cpu0)
	})
}

// BenchmarkPublish measures Publish alone from many goroutines into one stream with
// one tail-less drain whose receiver is down (every line is queued or dropped).
func BenchmarkPublish(b *testing.B) {
	b.ReportAllocs()
	p := logs.New(logs.Options{Logger: discardLogger()})
	defer p.Close()
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "down", URL: "syslog+tcp://127.0.0.1:9"}}); err != nil {
		b.Fatal(err)
	}
	text := string(bytes.Repeat([]byte{'x'}, benchLineBytes-1))
	b.SetBytes(benchLineBytes)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Publish(logs.Line{App: "shop", Env: "production", Source: logs.SourceApp, Dyno: "web.1", Text: text})
		}
	})
}

// BenchmarkAppendFrame measures the RFC 5424 encoder.
func BenchmarkAppendFrame(b *testing.B) {
	b.ReportAllocs()
	l := logs.Line{Time: time.Now(), App: "shop", Env: "production", Source: logs.SourceApp, Dyno: "web.1", Text: string(bytes.Repeat([]byte{'x'}, benchLineBytes-1))}
	buf := make([]byte, 0, 4096)
	b.SetBytes(benchLineBytes)
	for b.Loop() {
		buf = logs.AppendFrame(buf[:0], l)
	}
}
