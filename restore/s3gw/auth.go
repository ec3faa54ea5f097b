package s3gw

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// Credentials are the key pair clients sign their requests with.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// Handler serves the bucket over HTTP: every request must carry a valid S3 Signature
// Version 4 (header or presigned URL) made with c, and only reads get through.
func (g *Gateway) Handler(c Credentials) http.Handler {
	fake := gofakes3.New(backend{g}, gofakes3.WithLogger(fakesLog{g.o.Log}),
		gofakes3.WithTimeSkewLimit(0), // the guard checks the clock, for presigned URLs too
		gofakes3.WithoutVersioning())
	return &guard{next: fake.Server(), creds: c, log: g.o.Log}
}

// guard checks signatures and refuses anything but reads before gofakes3 sees a request.
type guard struct {
	next  http.Handler
	creds Credentials
	log   *slog.Logger
	ids   atomic.Uint64
}

func (h *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &respWriter{ResponseWriter: w}
	e := h.verify(r, time.Now())
	if e == nil {
		e = readOnly(r)
	}
	if e != nil {
		h.log.Debug("serve-s3: refused", "method", r.Method, "uri", r.RequestURI, "code", e.code, "why", e.msg)
		h.writeError(rw, r, e)
		return
	}
	h.next.ServeHTTP(rw, r)
	rw.fix()
}

// apiError is an S3 error answer.
type apiError struct {
	status    int
	code, msg string
}

func accessDenied(msg string) *apiError { return &apiError{http.StatusForbidden, "AccessDenied", msg} }

func malformed(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "AuthorizationHeaderMalformed", msg}
}

func (h *guard) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	id := fmt.Sprintf("%016X", h.ids.Add(1))
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", id)
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return
	}
	body := struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Resource  string
		RequestID string `xml:"RequestId"`
	}{Code: e.code, Message: e.msg, Resource: r.URL.Path, RequestID: id}
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(body)
}

// unsupported are sub-resources a GET may name that this endpoint has nothing for;
// gofakes3 would otherwise answer them as plain listings or reads.
var unsupported = []string{"acl", "policy", "policyStatus", "tagging", "cors", "lifecycle", "website",
	"logging", "notification", "replication", "encryption", "object-lock", "retention", "legal-hold",
	"torrent", "restore", "select", "attributes", "accelerate", "analytics", "inventory", "metrics",
	"ownershipControls", "publicAccessBlock", "requestPayment", "intelligent-tiering"}

// readOnly lets GET and HEAD through and refuses everything else.
func readOnly(r *http.Request) *apiError {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query()
		for _, s := range unsupported {
			if q.Has(s) {
				return &apiError{http.StatusNotImplemented, "NotImplemented", "this endpoint does not serve ?" + s}
			}
		}
		return nil
	case http.MethodPut, http.MethodPost, http.MethodDelete:
		return accessDenied("this endpoint is read-only: " + r.Method + " is refused")
	}
	return &apiError{http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource."}
}

const (
	sigAlgo       = "AWS4-HMAC-SHA256"
	amzDateLayout = "20060102T150405Z"
	maxSkew       = 15 * time.Minute
	emptySHA256   = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// sigParams are the parts of a signed request the signature covers.
type sigParams struct {
	accessKey, date, region, service string
	signed                           []string
	signature                        string
	when                             time.Time
	amzDate                          string
	payload                          string
	presigned                        bool
}

// verify checks a request's Signature Version 4 against the credentials.
func (h *guard) verify(r *http.Request, now time.Time) *apiError {
	authz := r.Header.Get("Authorization")
	q := r.URL.Query()
	var sp sigParams
	var e *apiError
	switch {
	case strings.HasPrefix(authz, sigAlgo+" "):
		sp, e = headerParams(r, authz)
	case authz == "" && q.Has("X-Amz-Algorithm"):
		sp, e = queryParams(q, now)
	case strings.HasPrefix(authz, "AWS "), authz == "" && q.Has("AWSAccessKeyId"):
		return accessDenied("Signature Version 2 is not accepted: sign requests with Signature Version 4 (SigV4)")
	case authz == "":
		return accessDenied("anonymous requests are refused: sign them with Signature Version 4 (SigV4) and the serve_s3 credentials")
	default:
		return malformed("unsupported Authorization header: use " + sigAlgo)
	}
	if e != nil {
		return e
	}
	if subtle.ConstantTimeCompare([]byte(sp.accessKey), []byte(h.creds.AccessKeyID)) != 1 {
		return &apiError{http.StatusForbidden, "InvalidAccessKeyId", "The access key ID you provided does not exist in our records."}
	}
	if sp.service != "s3" || sp.region == "" {
		return malformed("the credential scope must name a region and the service s3")
	}
	if sp.when.Format("20060102") != sp.date {
		return malformed("the credential scope date does not match the request date")
	}
	if !sp.presigned {
		if d := now.Sub(sp.when); d > maxSkew || d < -maxSkew {
			return &apiError{http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."}
		}
	}
	if !slices.Contains(sp.signed, "host") {
		return accessDenied("the host header must be signed")
	}
	key := hmacSHA([]byte("AWS4"+h.creds.SecretAccessKey), sp.date)
	for _, part := range []string{sp.region, sp.service, "aws4_request"} {
		key = hmacSHA(key, part)
	}
	scope := strings.Join([]string{sp.date, sp.region, sp.service, "aws4_request"}, "/")
	for _, cr := range canonicalRequests(r, sp) {
		sum := sha256.Sum256([]byte(cr))
		sts := sigAlgo + "\n" + sp.amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
		want := hex.EncodeToString(hmacSHA(key, sts))
		if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(sp.signature))) == 1 {
			return nil
		}
	}
	return &apiError{http.StatusForbidden, "SignatureDoesNotMatch",
		"The request signature we calculated does not match the signature you provided. Check your key and signing method."}
}

// headerParams reads "Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
func headerParams(r *http.Request, authz string) (sigParams, *apiError) {
	var sp sigParams
	var cred, signed string
	for _, part := range strings.Split(authz[len(sigAlgo)+1:], ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sp.signature = v
		}
	}
	if cred == "" || signed == "" || sp.signature == "" {
		return sp, malformed("the Authorization header needs Credential, SignedHeaders and Signature")
	}
	if e := sp.scope(cred); e != nil {
		return sp, e
	}
	sp.signed = strings.Split(signed, ";")
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		t, err := time.Parse(amzDateLayout, d)
		if err != nil {
			return sp, malformed("X-Amz-Date is not in the form 20060102T150405Z")
		}
		sp.when, sp.amzDate = t, d
	} else if d := r.Header.Get("Date"); d != "" {
		t, err := http.ParseTime(d)
		if err != nil {
			return sp, malformed("the Date header cannot be read")
		}
		sp.when, sp.amzDate = t.UTC(), t.UTC().Format(amzDateLayout)
	} else {
		return sp, accessDenied("a signed request needs an X-Amz-Date or Date header")
	}
	sp.payload = r.Header.Get("X-Amz-Content-Sha256")
	if sp.payload == "" {
		sp.payload = emptySHA256
	}
	return sp, nil
}

// queryParams reads a presigned URL's X-Amz-* parameters.
func queryParams(q url.Values, now time.Time) (sigParams, *apiError) {
	sp := sigParams{presigned: true, signature: q.Get("X-Amz-Signature")}
	bad := func(msg string) (sigParams, *apiError) {
		return sp, &apiError{http.StatusBadRequest, "AuthorizationQueryParametersError", msg}
	}
	if q.Get("X-Amz-Algorithm") != sigAlgo {
		return bad("X-Amz-Algorithm must be " + sigAlgo)
	}
	if sp.signature == "" || q.Get("X-Amz-SignedHeaders") == "" {
		return bad("X-Amz-Signature and X-Amz-SignedHeaders are required")
	}
	if e := sp.scope(q.Get("X-Amz-Credential")); e != nil {
		return sp, e
	}
	sp.signed = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	t, err := time.Parse(amzDateLayout, q.Get("X-Amz-Date"))
	if err != nil {
		return bad("X-Amz-Date is not in the form 20060102T150405Z")
	}
	sp.when, sp.amzDate = t, q.Get("X-Amz-Date")
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || secs < 1 || secs > 7*24*3600 {
		return bad("X-Amz-Expires must be between 1 and 604800 seconds")
	}
	if now.After(t.Add(time.Duration(secs) * time.Second)) {
		return sp, accessDenied("Request has expired")
	}
	if t.After(now.Add(maxSkew)) {
		return sp, accessDenied("Request is not valid yet")
	}
	sp.payload = q.Get("X-Amz-Content-Sha256")
	if sp.payload == "" {
		sp.payload = "UNSIGNED-PAYLOAD"
	}
	return sp, nil
}

// scope reads "AKID/20260102/region/s3/aws4_request".
func (sp *sigParams) scope(cred string) *apiError {
	parts := strings.Split(cred, "/")
	n := len(parts)
	if n < 5 || parts[n-1] != "aws4_request" {
		return malformed("the credential must be KEY/DATE/REGION/SERVICE/aws4_request")
	}
	sp.accessKey = strings.Join(parts[:n-4], "/")
	sp.date, sp.region, sp.service = parts[n-4], parts[n-3], parts[n-2]
	return nil
}

// canonicalRequests builds the canonical request of r. Clients do not agree on how a
// path or query is escaped on the wire versus in the signature (S3 signs the path as
// sent; some send '@' or ':' bare and sign them escaped, and '+' in a query may mean a
// space), so every reading is tried: a few HMACs per request.
func canonicalRequests(r *http.Request, sp sigParams) []string {
	raw := r.URL.EscapedPath()
	if ru := r.RequestURI; strings.HasPrefix(ru, "/") {
		raw, _, _ = strings.Cut(ru, "?")
	}
	uris := []string{raw, uriEncode(r.URL.Path, false)}
	for i, u := range uris {
		if u == "" {
			uris[i] = "/"
		}
	}
	queries := []string{canonicalQuery(r.URL.RawQuery, false, sp.presigned)}
	if strings.Contains(r.URL.RawQuery, "+") {
		queries = append(queries, canonicalQuery(r.URL.RawQuery, true, sp.presigned))
	}
	var hdrs strings.Builder
	for _, name := range sp.signed {
		var v string
		if name == "host" {
			v = r.Host
		} else {
			vals := slices.Clone(r.Header.Values(name))
			for i, x := range vals {
				vals[i] = strings.Join(strings.Fields(x), " ")
			}
			v = strings.Join(vals, ",")
		}
		hdrs.WriteString(name + ":" + v + "\n")
	}
	var out []string
	for _, u := range slices.Compact(uris) {
		for _, q := range queries {
			out = append(out, strings.Join([]string{r.Method, u, q, hdrs.String(), strings.Join(sp.signed, ";"), sp.payload}, "\n"))
		}
	}
	return out
}

// canonicalQuery sorts and strictly escapes the query parameters.
func canonicalQuery(raw string, plusIsSpace, presigned bool) string {
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = unescape(k, plusIsSpace), unescape(v, plusIsSpace)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, kv{uriEncode(k, true), uriEncode(v, true)})
	}
	sort.Slice(pairs, func(a, b int) bool {
		if pairs[a].k != pairs[b].k {
			return pairs[a].k < pairs[b].k
		}
		return pairs[a].v < pairs[b].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

func unescape(s string, plusIsSpace bool) string {
	var out string
	var err error
	if plusIsSpace {
		out, err = url.QueryUnescape(s)
	} else {
		out, err = url.PathUnescape(s)
	}
	if err != nil {
		return s
	}
	return out
}

// uriEncode escapes every byte but the unreserved ones (and '/' unless encodeSlash).
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~',
			c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func hmacSHA(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// respWriter lets the guard fix gofakes3's answer headers before they are sent: a
// history version's ETag (gofakes3 can only write hex of a hash) and the Server name.
type respWriter struct {
	http.ResponseWriter
	fixed bool
	quiet bool // a 304 answer, which has no body (gofakes3 writes one anyway)
}

func (w *respWriter) fix() {
	if w.fixed {
		return
	}
	w.fixed = true
	h := w.Header()
	if v := h.Get(etagHeader); v != "" {
		h.Set("ETag", v)
		h.Del(etagHeader)
	}
	h.Set("Server", "mmreplicate")
}

func (w *respWriter) WriteHeader(code int) {
	w.fix()
	w.quiet = code == http.StatusNotModified
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	w.fix()
	if w.quiet {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the server's own copy path (and its buffer sizes) for bodies.
func (w *respWriter) ReadFrom(r io.Reader) (int64, error) {
	w.fix()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
