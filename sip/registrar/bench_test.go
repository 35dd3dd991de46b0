package registrar

import (
	"testing"
)

// BenchmarkRegisterRefresh measures a re-REGISTER of one binding on a
// single-node site: HSS read, record compare-and-set, timer set and check.
func BenchmarkRegisterRefresh(b *testing.B) {
	e := newEnv(b)
	cseq := 1
	for b.Loop() {
		res := e.reg.Register(e.ctx, registerReq(b, alice, "bench", cseq, c1), aliceI)
		if res.StatusCode != 200 {
			b.Fatal(res.StatusCode)
		}
		cseq++
	}
}
