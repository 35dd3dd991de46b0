package baresip

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// stripANSI removes the CSI colour escapes ("ESC [ ... letter") baresip
// puts around warnings and registration states.
func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] == ';' || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			if j < len(s) {
				i = j // skip the final letter too
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lineRing is baresip's stdout/stderr sink: it logs every line at debug
// level and keeps the last few for error messages.
type lineRing struct {
	log *slog.Logger

	mu      sync.Mutex
	partial []byte
	lines   []string
	max     int
}

func newLineRing(max int, log *slog.Logger) *lineRing {
	return &lineRing{max: max, log: log}
}

// Write implements io.Writer; lines end at '\n' or '\r'.
func (r *lineRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = append(r.partial, p...)
	for {
		i := bytes.IndexAny(r.partial, "\r\n")
		if i < 0 {
			break
		}
		r.addLocked(string(r.partial[:i]))
		r.partial = r.partial[i+1:]
	}
	// Never let a line without terminator grow without bound.
	if len(r.partial) > 4096 {
		r.addLocked(string(r.partial))
		r.partial = nil
	}
	return len(p), nil
}

func (r *lineRing) addLocked(line string) {
	line = stripANSI(line)
	if line == "" {
		return
	}
	r.log.Debug("baresip output", "line", line)
	if len(r.lines) >= r.max {
		r.lines = r.lines[1:]
	}
	r.lines = append(r.lines, line)
}

// Lines returns the last lines written, oldest first, including an
// unterminated trailing line.
func (r *lineRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.lines...)
	if len(r.partial) > 0 {
		out = append(out, stripANSI(string(r.partial)))
	}
	return out
}
