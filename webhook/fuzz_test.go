package webhook

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// FuzzVerify checks Verify against arbitrary input:
//   - arbitrary secret, headers and body never make it panic;
//   - a body signed with Sign always verifies (at the signing time, with
//     the current clock through the exported Verify, and among other
//     signatures during a rotation);
//   - changing, removing or inserting any single byte of the body makes it
//     fail with ErrInvalidSignature.
func FuzzVerify(f *testing.F) {
	// The Standard Webhooks published test vector (sign_test.go).
	f.Add(vectorSecret, vectorID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorPayload), int64(vectorTimestamp), uint(3), byte(1))
	f.Add(vectorSecret, vectorID, strconv.Itoa(vectorTimestamp), "v1,"+vectorSignature[3:]+" v1a,xyz", []byte(vectorPayload), int64(vectorTimestamp), uint(0), byte(0x80))
	f.Add(otherSecret, "msg_2", "1700000000", "v1,!!!not-base64 v2,abc", []byte(`{"type":"escrow.status_changed"}`), int64(1700000000), uint(17), byte(0xff))
	f.Add("whsec_", "", "", "", []byte{}, int64(0), uint(0), byte(0))
	f.Add("not-a-secret", "msg with space", "-5", "v1,", []byte("\x00\xff"), int64(-1), uint(1), byte(7))
	f.Add(vectorSecret[len("whsec_"):], "evt-1", "99999999999999999999", "v1", []byte(`{"a":1}`), int64(1<<40), uint(5), byte(2))
	f.Add(vectorSecret, "msg_\r\nx-injected: 1", "1614265330 ", " v1,"+vectorSignature[3:]+"  ", []byte(vectorPayload), int64(vectorTimestamp), uint(9), byte(32))

	f.Fuzz(func(t *testing.T, secret, id, rawTS, sig string, body []byte, ts int64, pos uint, delta byte) {
		// 1. Arbitrary input: no panic, whatever the answer.
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, rawTS)
		h.Set(HeaderSignature, sig)
		_ = Verify(secret, h, body, 0)
		if n, err := strconv.ParseInt(rawTS, 10, 64); err == nil {
			_ = verifyAt(secret, h, body, time.Minute, time.Unix(n, 0)) // reach the signature check too
		}

		// 2. Signed with Sign, it verifies. An unusable secret or id is
		// replaced by one derived from the input, so every input signs.
		if _, err := decodeSecret(secret, false); err != nil {
			secret = "whsec_" + base64.StdEncoding.EncodeToString(append([]byte("k"), secret...))
		}
		if CheckID(id) != nil {
			id = "msg_" + strconv.Itoa(len(id))
		}
		ts %= 1 << 40 // seconds: until year 36812
		if ts < 0 {
			ts = -ts
		}
		at := time.Unix(ts, 0)
		signed := func(sig string) http.Header {
			h := http.Header{}
			h.Set(HeaderID, id)
			h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
			h.Set(HeaderSignature, sig)
			return h
		}
		good, err := Sign(secret, id, at, body)
		if err != nil {
			t.Fatalf("Sign(valid secret, %q): %v", id, err)
		}
		if err := verifyAt(secret, signed(good), body, time.Minute, at); err != nil {
			t.Fatalf("verify a body signed with Sign: got %v, want nil", err)
		}
		if err := verifyAt(secret, signed(sig+" "+good+" v1,"+base64.StdEncoding.EncodeToString(body)), body, time.Minute, at); err != nil {
			t.Fatalf("verify a signature among others: got %v, want nil", err)
		}
		now := time.Now()
		nowSig, err := Sign(secret, id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		nh := signed(nowSig)
		nh.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		if err := Verify(secret, nh, body, 0); err != nil {
			t.Fatalf("Verify a body signed just now: got %v, want nil", err)
		}

		// 3. Any single-byte change of the body fails.
		if delta == 0 {
			delta = 0xff
		}
		var changed [][]byte
		if len(body) > 0 {
			i := int(pos % uint(len(body)))
			flipped := append([]byte(nil), body...)
			flipped[i] ^= delta
			removed := append(append([]byte(nil), body[:i]...), body[i+1:]...)
			changed = append(changed, flipped, removed)
		}
		i := int(pos % uint(len(body)+1))
		inserted := append(append(append([]byte(nil), body[:i]...), delta), body[i:]...)
		changed = append(changed, inserted)
		for _, c := range changed {
			if err := verifyAt(secret, signed(good), c, time.Minute, at); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("verify %q signed as %q: got %v, want ErrInvalidSignature", c, body, err)
			}
		}
	})
}
