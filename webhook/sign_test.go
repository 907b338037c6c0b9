package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks published test vector: spec/standard-webhooks.md and
// libraries/go/webhook_test.go (TestWebhookSign) of
// github.com/standard-webhooks/standard-webhooks; the same values are in
// every reference library's tests.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// otherSecret is a second valid secret (32 bytes) for rotation and
// wrong-secret cases.
const otherSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="

func vectorHeader() http.Header {
	h := http.Header{}
	h.Set(HeaderID, vectorID)
	h.Set(HeaderTimestamp, strconv.Itoa(vectorTimestamp))
	h.Set(HeaderSignature, vectorSignature)
	return h
}

func TestSignTestVector(t *testing.T) {
	for _, secret := range []string{vectorSecret, strings.TrimPrefix(vectorSecret, "whsec_")} {
		got, err := Sign(secret, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
		if err != nil {
			t.Fatalf("Sign(%q): got error %v, want nil", secret[:6], err)
		}
		if got != vectorSignature {
			t.Errorf("Sign: got %q, want %q", got, vectorSignature)
		}
	}
}

func TestVerifyTestVector(t *testing.T) {
	now := time.Unix(vectorTimestamp, 0)
	if err := verifyAt(vectorSecret, vectorHeader(), []byte(vectorPayload), 5*time.Minute, now); err != nil {
		t.Errorf("verify published vector: got %v, want nil", err)
	}
	// With the real clock the 2021 vector is long stale.
	if err := Verify(vectorSecret, vectorHeader(), []byte(vectorPayload), 5*time.Minute); !errors.Is(err, ErrTimestampTooOld) {
		t.Errorf("Verify published vector today: got %v, want ErrTimestampTooOld", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(vectorTimestamp, 0)
	const tol = 5 * time.Minute
	body := []byte(vectorPayload)
	signedAt := func(secret string, ts time.Time) http.Header {
		sig, err := Sign(secret, vectorID, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(HeaderID, vectorID)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	rotated, err := Sign(otherSecret, vectorID, now, body)
	if err != nil {
		t.Fatal(err)
	}
	bogus := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="

	tests := []struct {
		name   string
		secret string
		header http.Header
		body   string
		want   error
	}{
		{"valid", vectorSecret, vectorHeader(), vectorPayload, nil},
		{"secret without whsec_ prefix", strings.TrimPrefix(vectorSecret, "whsec_"), vectorHeader(), vectorPayload, nil},
		{"tampered body", vectorSecret, vectorHeader(), `{"test": 2432232315}`, ErrInvalidSignature},
		{"body re-serialised", vectorSecret, vectorHeader(), `{"test":2432232314}`, ErrInvalidSignature},
		{"wrong secret", otherSecret, vectorHeader(), vectorPayload, ErrInvalidSignature},
		{"tampered id", vectorSecret, with(vectorHeader(), HeaderID, "msg_other"), vectorPayload, ErrInvalidSignature},
		{"stale timestamp", vectorSecret, signedAt(vectorSecret, now.Add(-tol-time.Second)), vectorPayload, ErrTimestampTooOld},
		{"future timestamp", vectorSecret, signedAt(vectorSecret, now.Add(tol+time.Second)), vectorPayload, ErrTimestampTooNew},
		{"oldest accepted", vectorSecret, signedAt(vectorSecret, now.Add(-tol)), vectorPayload, nil},
		{"newest accepted", vectorSecret, signedAt(vectorSecret, now.Add(tol)), vectorPayload, nil},
		{"timestamp moved without re-signing", vectorSecret, with(vectorHeader(), HeaderTimestamp, strconv.Itoa(vectorTimestamp+1)), vectorPayload, ErrInvalidSignature},
		{"missing webhook-id", vectorSecret, with(vectorHeader(), HeaderID, ""), vectorPayload, ErrMissingHeader},
		{"missing webhook-timestamp", vectorSecret, with(vectorHeader(), HeaderTimestamp, ""), vectorPayload, ErrMissingHeader},
		{"missing webhook-signature", vectorSecret, with(vectorHeader(), HeaderSignature, ""), vectorPayload, ErrNoSignature},
		{"no headers at all", vectorSecret, http.Header{}, vectorPayload, ErrMissingHeader},
		{"non-numeric timestamp", vectorSecret, with(vectorHeader(), HeaderTimestamp, "2021-02-26T00:00:00Z"), vectorPayload, ErrInvalidTimestamp},
		{"negative timestamp", vectorSecret, with(vectorHeader(), HeaderTimestamp, "-5"), vectorPayload, ErrInvalidTimestamp},
		{"only an asymmetric signature", vectorSecret, with(vectorHeader(), HeaderSignature, "v1a,"+vectorSignature[3:]), vectorPayload, ErrNoSignature},
		{"signature without version", vectorSecret, with(vectorHeader(), HeaderSignature, vectorSignature[3:]), vectorPayload, ErrNoSignature},
		{"garbage base64", vectorSecret, with(vectorHeader(), HeaderSignature, "v1,!!!not-base64"), vectorPayload, ErrInvalidSignature},
		{"truncated signature", vectorSecret, with(vectorHeader(), HeaderSignature, vectorSignature[:20]), vectorPayload, ErrInvalidSignature},
		{"rotation: valid among several", vectorSecret, with(vectorHeader(), HeaderSignature, strings.Join([]string{bogus, "v2," + vectorSignature[3:], rotated, vectorSignature, bogus}, " ")), vectorPayload, nil},
		{"rotation: new secret matches its own signature", otherSecret, with(vectorHeader(), HeaderSignature, vectorSignature+" "+rotated), vectorPayload, nil},
		{"rotation: none matches", vectorSecret, with(vectorHeader(), HeaderSignature, bogus+" "+rotated), vectorPayload, ErrInvalidSignature},
		{"invalid secret", "whsec_not base64!", vectorHeader(), vectorPayload, ErrInvalidSecret},
		{"empty secret", "whsec_", vectorHeader(), vectorPayload, ErrInvalidSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAt(tc.secret, tc.header, []byte(tc.body), tol, now)
			if tc.want == nil && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(tc.secret, "whsec_")) && len(tc.secret) > len("whsec_") {
				t.Errorf("got error %q, want it without the secret", err)
			}
		})
	}
}

func TestVerifyDefaultTolerance(t *testing.T) {
	now := time.Unix(vectorTimestamp, 0)
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"within 5 minutes", now.Add(DefaultTolerance), nil},
		{"beyond 5 minutes", now.Add(DefaultTolerance + time.Second), ErrTimestampTooOld},
	}
	for _, tc := range tests {
		err := verifyAt(vectorSecret, vectorHeader(), []byte(vectorPayload), 0, tc.now)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestSignRejects(t *testing.T) {
	ts := time.Unix(vectorTimestamp, 0)
	tests := []struct {
		name, secret, id string
		want             error
	}{
		{"not base64", "whsec_%%%", vectorID, ErrInvalidSecret},
		{"empty secret", "", vectorID, ErrInvalidSecret},
		{"empty id", vectorSecret, "", ErrInvalidID},
		{"id with newline", vectorSecret, "msg_1\r\nx-injected: 1", ErrInvalidID},
		{"id with space", vectorSecret, "msg 1", ErrInvalidID},
		{"id too long", vectorSecret, strings.Repeat("a", maxIDLen+1), ErrInvalidID},
	}
	for _, tc := range tests {
		got, err := Sign(tc.secret, tc.id, ts, []byte(vectorPayload))
		if !errors.Is(err, tc.want) || got != "" {
			t.Errorf("%s: got (%q, %v), want (\"\", %v)", tc.name, got, err, tc.want)
		}
	}
}

func TestSignaturesRotation(t *testing.T) {
	k1, _ := decodeSecret(vectorSecret, true)
	k2, _ := decodeSecret(otherSecret, true)
	got := signatures([]secretKey{k1, k2}, vectorID, vectorTimestamp, []byte(vectorPayload))
	second, _ := Sign(otherSecret, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if want := vectorSignature + " " + second; got != want {
		t.Errorf("signatures: got %q, want %q", got, want)
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	s, err := NewSigner(vectorSecret, otherSecret)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := decodeSecret(vectorSecret, true)
	for _, v := range []any{s, s.keys[0], s.keys} {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			got := fmt.Sprintf(format, v)
			if strings.Contains(got, "MfKQ") || strings.Contains(got, string(k)) || strings.Contains(got, fmt.Sprint([]byte(k))[1:8]) {
				t.Errorf("%s of %T: got %q, want the keys redacted", format, v, got)
			}
		}
	}
}
