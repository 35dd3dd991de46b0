package baresip

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxNetstring bounds one ctrl_tcp message; baresip's own limit is far
// smaller, so anything larger means the stream is corrupt.
const maxNetstring = 1 << 20

// Event is one ctrl_tcp event from baresip, e.g. CALL_ESTABLISHED.
type Event struct {
	Type       string `json:"type"`
	Class      string `json:"class"`
	AccountAOR string `json:"accountaor"`
	Direction  string `json:"direction"`
	PeerURI    string `json:"peeruri"`
	ID         string `json:"id"`
	Param      string `json:"param"`
}

// Event types that tests usually wait for.
const (
	EventRegisterOK       = "REGISTER_OK"
	EventRegisterFail     = "REGISTER_FAIL"
	EventCallIncoming     = "CALL_INCOMING"
	EventCallRinging      = "CALL_RINGING"
	EventCallProgress     = "CALL_PROGRESS"
	EventCallEstablished  = "CALL_ESTABLISHED"
	EventCallRTPEstablish = "CALL_RTPESTAB"
	EventCallClosed       = "CALL_CLOSED"
)

// command is a ctrl_tcp request.
type command struct {
	Command string `json:"command"`
	Params  string `json:"params,omitempty"`
	Token   string `json:"token"`
}

// message is any ctrl_tcp message: an event or a command response.
type message struct {
	Event    bool   `json:"event"`
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
	ev       Event  // filled when Event is true
}

// encodeNetstring frames payload as "<len>:<payload>,".
func encodeNetstring(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+12)
	out = strconv.AppendInt(out, int64(len(payload)), 10)
	out = append(out, ':')
	out = append(out, payload...)
	return append(out, ',')
}

// readNetstring reads one "<len>:<payload>," frame.
func readNetstring(r *bufio.Reader) ([]byte, error) {
	var n int
	digits := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if digits == 0 && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("netstring length: %w", noEOF(err))
		}
		if c == ':' {
			break
		}
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("netstring length: unexpected byte %q", c)
		}
		n = n*10 + int(c-'0')
		digits++
		if n > maxNetstring {
			return nil, fmt.Errorf("netstring length exceeds %d bytes", maxNetstring)
		}
	}
	if digits == 0 {
		return nil, errors.New("netstring length: no digits")
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("netstring payload: %w", noEOF(err))
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("netstring: missing trailing ',' (got %q)", buf[n])
	}
	return buf[:n], nil
}

// noEOF turns a clean EOF in the middle of a frame into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeMessage parses one ctrl_tcp JSON message.
func decodeMessage(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode ctrl_tcp message %q: %w", b, err)
	}
	if m.Event {
		if err := json.Unmarshal(b, &m.ev); err != nil {
			return m, fmt.Errorf("decode ctrl_tcp event %q: %w", b, err)
		}
	}
	if !m.Event && !m.Response {
		return m, fmt.Errorf("ctrl_tcp message %q is neither event nor response", b)
	}
	return m, nil
}
