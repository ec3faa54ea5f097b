package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/mmreplicate/mmreplicate/objstore"
)

// opError is a store error: a one-line message for people, and the sentinel
// and SDK error underneath for errors.Is/As and objstore.Temporary.
type opError struct {
	msg  string
	errs []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

var (
	notFoundCodes = map[string]bool{"NoSuchKey": true, "NotFound": true}
	deniedCodes   = map[string]bool{
		"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
		"Forbidden": true, "AllAccessDisabled": true, "InvalidToken": true,
		"ExpiredToken": true, "AccountProblem": true, "InvalidSecurity": true,
		"InvalidClientTokenId": true, "UnrecognizedClientException": true,
		// Some gateways answer an unknown access key with 404 and this code;
		// it is a credentials problem, not a missing bucket or key.
		"XAdminUserNotFound": true,
	}
)

// fail turns an SDK error into the store's error: the sentinel it means,
// and a message of the form "s3://bucket/prefix: put seg/x: what went wrong".
func (s *Store) fail(op, key string, err error) error {
	where := s.url + ": " + op
	if key != "" {
		where += " " + key
	}
	code, status := "", 0
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	var sentinel error
	var what string
	switch {
	case errors.Is(err, objstore.ErrInvalidKey):
		return fmt.Errorf("%s: %w", where, err)
	case code == "NoSuchBucket" || (op == "check" && (notFoundCodes[code] || code == "" && status == 404)):
		sentinel = objstore.ErrNoBucket
		what = fmt.Sprintf("bucket %q does not exist (%s)", s.bucket, codeOr(code, status))
	case deniedCodes[code] || status == 403:
		sentinel = objstore.ErrAccessDenied
		what = fmt.Sprintf("access denied (%s): check access_key_id/secret_access_key", codeOr(code, status))
	case notFoundCodes[code] || status == 404:
		sentinel = objstore.ErrNotFound
		what = "not found"
	default:
		what = describe(err, s.endpoint)
	}
	errs := []error{err}
	if sentinel != nil {
		errs = []error{sentinel, err}
	}
	return &opError{msg: where + ": " + what, errs: errs}
}

func codeOr(code string, status int) string {
	if code != "" {
		return code
	}
	return fmt.Sprintf("HTTP %d", status)
}

// describe says what went wrong in one line, without the SDK's layers of
// operation names and request IDs.
func describe(err error, endpoint string) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled: " + context.Canceled.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out: " + context.DeadlineExceeded.Error()
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		msg := apiErr.ErrorCode()
		if m := apiErr.ErrorMessage(); m != "" {
			msg += ": " + m
		}
		var respErr *awshttp.ResponseError
		if errors.As(err, &respErr) {
			msg += fmt.Sprintf(" (HTTP %d)", respErr.HTTPStatusCode())
		}
		return oneLine(msg)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		server := endpoint
		if server == "" {
			server = "S3"
		}
		return oneLine("cannot reach " + server + ": " + opErr.Error())
	}
	return oneLine(err.Error())
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
