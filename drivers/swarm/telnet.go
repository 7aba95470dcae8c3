package swarm

import (
	"bytes"
	"io"

	"github.com/manifold-paas/manifold/drivers"
)

// A one-off with a terminal runs under busybox telnetd in inetd mode (the stack image
// has no other way to a pty): the rendezvous connection speaks telnet (RFC 854), of
// which the driver speaks the least that busybox telnetd needs: answer its option
// requests, send the window size (NAWS, RFC 1073), and escape 0xFF both ways.
const (
	telnetSE   = 240
	telnetSB   = 250
	telnetWILL = 251
	telnetWONT = 252
	telnetDO   = 253
	telnetDONT = 254
	telnetIAC  = 255

	telnetOptEcho = 1
	telnetOptSGA  = 3
	telnetOptNAWS = 31
)

// telnetEncode appends the terminal input p to dst as telnet data: 0xFF doubled, and
// CR followed by NUL, which telnetd drops, so that its CR LF -> CR rule (for clients
// that send CR LF for Return) leaves a LF typed after a CR alone.
func telnetEncode(dst, p []byte) []byte {
	for _, c := range p {
		switch c {
		case telnetIAC:
			dst = append(dst, telnetIAC, telnetIAC)
		case '\r':
			dst = append(dst, '\r', 0)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// telnetNAWS is the subnegotiation that sets the window size. Bytes of the size that
// are 0xFF are not doubled: busybox telnetd reads the four bytes as they come.
func telnetNAWS(size drivers.TerminalSize) []byte {
	return []byte{telnetIAC, telnetSB, telnetOptNAWS,
		byte(size.Cols >> 8), byte(size.Cols), byte(size.Rows >> 8), byte(size.Rows),
		telnetIAC, telnetSE}
}

// telnetDecoder splits telnetd's output into the terminal's bytes and the answers
// its option requests need. It keeps state across reads, as a command may be cut
// anywhere. Not safe for concurrent use.
type telnetDecoder struct {
	size     drivers.TerminalSize
	state    telnetState
	verb     byte
	answered map[[2]byte]bool // each request is answered once, so no loop is possible
}

type telnetState int

const (
	telnetData telnetState = iota
	telnetCommand
	telnetOption // after WILL, WONT, DO or DONT
	telnetSub    // inside SB … IAC SE
	telnetSubIAC
)

func newTelnetDecoder(size drivers.TerminalSize) *telnetDecoder {
	return &telnetDecoder{size: size, answered: map[[2]byte]bool{}}
}

// decode appends p's terminal bytes to data and the answers to send to replies.
func (t *telnetDecoder) decode(p, data, replies []byte) ([]byte, []byte) {
	for _, c := range p {
		switch t.state {
		case telnetData:
			if c == telnetIAC {
				t.state = telnetCommand
				continue
			}
			data = append(data, c)
		case telnetCommand:
			switch c {
			case telnetIAC:
				data = append(data, telnetIAC)
				t.state = telnetData
			case telnetWILL, telnetWONT, telnetDO, telnetDONT:
				t.verb = c
				t.state = telnetOption
			case telnetSB:
				t.state = telnetSub
			default: // NOP, GA, AYT, …: nothing for a client to do
				t.state = telnetData
			}
		case telnetOption:
			replies = t.answer(replies, t.verb, c)
			t.state = telnetData
		case telnetSub:
			if c == telnetIAC {
				t.state = telnetSubIAC
			}
		case telnetSubIAC:
			t.state = telnetSub
			if c == telnetSE {
				t.state = telnetData
			}
		}
	}
	return data, replies
}

// answer agrees to the window size and to telnetd echoing and suppressing go-ahead,
// and refuses everything else; WONT and DONT need no answer from a client that
// enabled nothing else.
func (t *telnetDecoder) answer(replies []byte, verb, option byte) []byte {
	key := [2]byte{verb, option}
	if t.answered[key] {
		return replies
	}
	t.answered[key] = true
	switch {
	case verb == telnetDO && option == telnetOptNAWS:
		replies = append(replies, telnetIAC, telnetWILL, option)
		return append(replies, telnetNAWS(t.size)...)
	case verb == telnetDO:
		return append(replies, telnetIAC, telnetWONT, option)
	case verb == telnetWILL && (option == telnetOptEcho || option == telnetOptSGA):
		return append(replies, telnetIAC, telnetDO, option)
	case verb == telnetWILL:
		return append(replies, telnetIAC, telnetDONT, option)
	}
	return replies
}

// telnetdOpening is what busybox telnetd writes before the command runs: its login
// issue's new line ("\r\n", which the pty's CR LF mapping makes "\r\r\n"). It is
// not the command's output.
const telnetdOpening = "\r\r\n"

// openingTrimmer writes to w what is written to it, without a leading opening.
type openingTrimmer struct {
	w       io.Writer
	opening []byte // what is left to match; nil once decided
	held    []byte // bytes that matched so far
}

func (o *openingTrimmer) Write(p []byte) (int, error) {
	n := len(p)
	if o.opening != nil {
		m := min(len(p), len(o.opening))
		if !bytes.Equal(p[:m], o.opening[:m]) {
			// Not the opening: what was held is output after all.
			o.opening = nil
			p = append(o.held, p...)
		} else {
			o.held = append(o.held, p[:m]...)
			o.opening = o.opening[m:]
			p = p[m:]
			if len(o.opening) > 0 {
				return n, nil
			}
			o.opening = nil
		}
		o.held = nil
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := o.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// flush writes what was held as a possible opening, at the end of the output.
func (o *openingTrimmer) flush() {
	if len(o.held) > 0 {
		_, _ = o.w.Write(o.held)
		o.held = nil
	}
	o.opening = nil
}
