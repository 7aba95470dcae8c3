package process

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// portAllocator hands out free TCP ports on 127.0.0.1 for $PORT. A port is free when
// this daemon has not handed it out and a listen on it succeeds right now; the dyno
// binds it a moment later (a race with other programs that a fixed range, away from the
// kernel's ephemeral range, makes unlikely).
type portAllocator struct {
	min, max int // 0, 0: ask the kernel for an ephemeral port

	mu    sync.Mutex
	next  int
	inUse map[int]bool
}

func newPortAllocator(min, max int) *portAllocator {
	return &portAllocator{min: min, max: max, next: min, inUse: make(map[int]bool)}
}

func (a *portAllocator) get() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.min == 0 {
		for range 64 {
			port, err := listenFree(0)
			if err != nil {
				return 0, err
			}
			if !a.inUse[port] {
				a.inUse[port] = true
				return port, nil
			}
		}
		return 0, fmt.Errorf("allocate a port on 127.0.0.1: the kernel keeps giving ports in use")
	}
	for range a.max - a.min + 1 {
		port := a.next
		if a.next++; a.next > a.max {
			a.next = a.min
		}
		if a.inUse[port] {
			continue
		}
		if _, err := listenFree(port); err == nil {
			a.inUse[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("allocate a port on 127.0.0.1: every port of %d-%d is in use", a.min, a.max)
}

// claim marks a port an adopted dyno holds.
func (a *portAllocator) claim(port int) {
	if port > 0 {
		a.mu.Lock()
		a.inUse[port] = true
		a.mu.Unlock()
	}
}

func (a *portAllocator) release(port int) {
	a.mu.Lock()
	delete(a.inUse, port)
	a.mu.Unlock()
}

// listenFree listens on 127.0.0.1:port and closes at once, returning the port bound.
func listenFree(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
