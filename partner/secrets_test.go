package partner

// Two valid registry secrets: the Standard Webhooks published test vector's
// (webhook/sign_test.go) and a second one of 32 bytes for rotation and
// wrong-secret cases.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret  = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
)
