package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
)

// Flow tokens name the connection a UE's requests arrived over (RFC 5626
// §5.2 style): the transport, this node's listener port and the UE's
// address, authenticated with the site's flow key so that a token in a
// Path or Record-Route URI cannot be forged to send traffic elsewhere.

const flowMACLen = 8

var transportCodes = []string{"UDP", "TCP", "TLS", "WS"}

func (c *Core) flowToken(transport string, listenerPort int, remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return ""
	}
	code := -1
	for i, t := range transportCodes {
		if strings.EqualFold(t, transport) {
			code = i
		}
	}
	if code < 0 {
		return ""
	}
	b := []byte{1, byte(code)}
	b = binary.BigEndian.AppendUint16(b, uint16(listenerPort))
	b = binary.BigEndian.AppendUint16(b, ap.Port())
	b = append(b, ap.Addr().Unmap().AsSlice()...)
	m := hmac.New(sha256.New, c.cfg.FlowKey)
	m.Write(b)
	b = append(b, m.Sum(nil)[:flowMACLen]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeFlow checks a token and returns the hop it names.
func (c *Core) decodeFlow(tok string) (wireHop, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 6+4+flowMACLen && len(b) != 6+16+flowMACLen || b[0] != 1 || int(b[1]) >= len(transportCodes) {
		return wireHop{}, false
	}
	body, mac := b[:len(b)-flowMACLen], b[len(b)-flowMACLen:]
	m := hmac.New(sha256.New, c.cfg.FlowKey)
	m.Write(body)
	if !hmac.Equal(mac, m.Sum(nil)[:flowMACLen]) {
		return wireHop{}, false
	}
	transport := transportCodes[b[1]]
	lport := int(binary.BigEndian.Uint16(b[2:4]))
	rport := binary.BigEndian.Uint16(b[4:6])
	addr, ok := netip.AddrFromSlice(body[6:])
	if !ok {
		return wireHop{}, false
	}
	h := wireHop{Hop: Hop{Transport: transport, Addr: netip.AddrPortFrom(addr, rport).String()}}
	h.ln = c.listenerByPort(transport, lport)
	return h, true
}

func (c *Core) validFlow(tok string) bool {
	_, ok := c.decodeFlow(tok)
	return ok
}

// FlowToken is the token naming the flow a transaction's request arrived
// over, "" for requests handed over in memory.
func (t *Txn) FlowToken() string { return t.Src.Flow }

// FlowListener reports the transport and listener port a flow token names,
// for building URIs that lead back to it; it does not authenticate it.
func FlowListener(tok string) (transport string, port int) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 6 || int(b[1]) >= len(transportCodes) {
		return "", 0
	}
	return transportCodes[b[1]], int(binary.BigEndian.Uint16(b[2:4]))
}
