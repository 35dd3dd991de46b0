package hss

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/wmnsk/milenage"
)

// ts35208 are test sets 1 to 4 of 3GPP TS 35.208 (Milenage conformance).
var ts35208 = []struct {
	name                              string
	k, rand, sqn, amf, op, opc        string
	f1, f1star, f2, f5, f3, f4, f5str string
}{
	{"set 1", "465b5ce8b199b49faa5f0a2ee238a6bc", "23553cbe9637a89d218ae64dae47bf35", "ff9bb4d0b607", "b9b9",
		"cdc202d5123e20f62b6d676ac72cb318", "cd63cb71954a9f4e48a5994e37a02baf",
		"4a9ffac354dfafb3", "01cfaf9ec4e871e9", "a54211d5e3ba50bf", "aa689c648370",
		"b40ba9a3c58b2a05bbf0d987b21bf8cb", "f769bcd751044604127672711c6d3441", "451e8beca43b"},
	{"set 2", "0396eb317b6d1c36f19c1c84cd6ffd16", "c00d603103dcee52c4478119494202e8", "fd8eef40df7d", "af17",
		"ff53bade17df5d4e793073ce9d7579fa", "53c15671c60a4b731c55b4a441c0bde2",
		"5df5b31807e258b0", "a8c016e51ef4a343", "d3a628ed988620f0", "c47783995f72",
		"58c433ff7a7082acd424220f2b67c556", "21a8c1f929702adb3e738488b9f5c5da", "30f1197061c1"},
	{"set 3", "fec86ba6eb707ed08905757b1bb44b8f", "9f7c8d021accf4db213ccff0c7f71a6a", "9d0277595ffc", "725c",
		"dbc59adcb6f9a0ef735477b7fadf8374", "1006020f0a478bf6b699f15c062e42b3",
		"9cabc3e99baf7281", "95814ba2b3044324", "8011c48c0c214ed2", "33484dc2136b",
		"5dbdbb2954e8f3cde665b046179a5098", "59a92d3b476a0443487055cf88b2307b", "deacdd848cc6"},
	{"set 4", "9e5944aea94b81165c82fbf9f32db751", "ce83dbc54ac0274a157c17f80d017bd6", "0b604a81eca8", "9e09",
		"223014c5806694c007ca1eeef57f004f", "a64a507ae1a2a98bb88eb4210135dc87",
		"74a58220cba84c49", "ac2cc74a96871837", "f365cd683cd92e96", "f0b9c08ad02e",
		"e203edb3971574f5a94b0d61b816345d", "0c4524adeac041c4dd830d20854fc46b", "6085a86c6f63"},
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func uint48(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func xorBytes(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

func TestMilenageVectorTS35208(t *testing.T) {
	for _, tc := range ts35208 {
		t.Run(tc.name, func(t *testing.T) {
			k, op, opcWant := unhex(t, tc.k), unhex(t, tc.op), unhex(t, tc.opc)
			opc, err := ComputeOPc(k, op)
			if err != nil || !bytes.Equal(opc, opcWant) {
				t.Fatalf("OPc = %x, %v; want %x", opc, err, opcWant)
			}
			amf := uint16(uint48(unhex(t, tc.amf)))
			a := &akaRecord{K: k, OPc: opc, AMF: amf}
			sqn := unhex(t, tc.sqn)
			av, err := milenageVector(a, unhex(t, tc.rand), uint48(sqn))
			if err != nil {
				t.Fatal(err)
			}
			wantAUTN := append(append(xorBytes(sqn, unhex(t, tc.f5)), unhex(t, tc.amf)...), unhex(t, tc.f1)...)
			for _, c := range []struct {
				what      string
				got, want []byte
			}{
				{"AUTN", av.AUTN, wantAUTN},
				{"XRES (f2)", av.XRES, unhex(t, tc.f2)},
				{"CK (f3)", av.CK, unhex(t, tc.f3)},
				{"IK (f4)", av.IK, unhex(t, tc.f4)},
			} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s = %x, want %x", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestVerifyAUTS builds AUTS as a USIM does (SQN_MS concealed with the test
// set's f5*, MAC-S over AMF 0) and checks that the HSS recovers SQN_MS, and
// that a token with a flipped bit is refused.
func TestVerifyAUTS(t *testing.T) {
	for _, tc := range ts35208 {
		t.Run(tc.name, func(t *testing.T) {
			a := &akaRecord{K: unhex(t, tc.k), OPc: unhex(t, tc.opc)}
			rand, sqn := unhex(t, tc.rand), unhex(t, tc.sqn)
			m := milenage.NewWithOPc(a.K, a.OPc, rand, uint48(sqn), 0)
			macS, err := m.F1Star(sqn, []byte{0, 0})
			if err != nil {
				t.Fatal(err)
			}
			auts := append(xorBytes(sqn, unhex(t, tc.f5str)), macS...)
			got, err := verifyAUTS(a, rand, auts)
			if err != nil || got != uint48(sqn) {
				t.Fatalf("verifyAUTS = %x, %v; want %x", got, err, sqn)
			}
			auts[10] ^= 1
			if _, err := verifyAUTS(a, rand, auts); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("tampered AUTS: err = %v, want ErrAuthFailed", err)
			}
		})
	}
}

func TestNextSQN(t *testing.T) {
	for _, tc := range []struct{ in, want uint64 }{
		{0, 1<<5 | 1},
		{5<<5 | 3, 6<<5 | 4},
		{9<<5 | 31, 10<<5 | 0},
		{1<<48 - 1, 0}, // SEQ wraps around at 2^43
	} {
		if got := nextSQN(tc.in); got != tc.want {
			t.Errorf("nextSQN(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
