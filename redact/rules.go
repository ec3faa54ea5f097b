package redact

import (
	"bytes"
	"encoding/base64"
	"math/bits"
)

// rule identifies a built-in rule; its order is the priority used by report.
type rule uint8

const (
	ruleAnthropic rule = iota
	ruleOpenRouter
	ruleOpenAI
	ruleGoogle
	ruleGroq
	ruleXAI
	ruleHuggingFace
	ruleGitHub
	ruleAWSKeyID
	ruleSlack
	ruleTelegram
	ruleDiscord
	ruleStripe
	rulePrivateKey
	ruleJWT
	ruleBearer
	ruleURLPassword
	ruleAWSSecret
	rulePassword
	ruleSecret
	ruleToken
	ruleAPIKey
	numRules
)

// ruleNames are the names Hit.Rule reports: format rules first (most specific), then
// rules that depend on context such as "password=".
var ruleNames = [numRules]string{
	ruleAnthropic:   "anthropic-api-key",     // sk-ant-api03-…, sk-ant-admin01-…, sk-ant-oat01-…
	ruleOpenRouter:  "openrouter-api-key",    // sk-or-v1-<64 hex>
	ruleOpenAI:      "openai-api-key",        // sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…
	ruleGoogle:      "google-api-key",        // AIza + 35
	ruleGroq:        "groq-api-key",          // gsk_ + 52
	ruleXAI:         "xai-api-key",           // xai- + 80
	ruleHuggingFace: "huggingface-token",     // hf_ + 34 letters
	ruleGitHub:      "github-token",          // ghp_ gho_ ghu_ ghs_ ghr_ + 36, github_pat_ + 82
	ruleAWSKeyID:    "aws-access-key-id",     // AKIA / ASIA + 16
	ruleSlack:       "slack-token",           // xoxb- xoxp- xoxa- xoxr- xoxs- xoxe-
	ruleTelegram:    "telegram-bot-token",    // <bot id>:<35>
	ruleDiscord:     "discord-bot-token",     // base64(user id).<6>.<27+>
	ruleStripe:      "stripe-secret-key",     // sk_live_, rk_live_
	rulePrivateKey:  "private-key",           // body of -----BEGIN … PRIVATE KEY-----
	ruleJWT:         "jwt",                   // eyJ….eyJ….…
	ruleBearer:      "bearer-token",          // Authorization: Bearer <token>
	ruleURLPassword: "url-password",          // scheme://user:<password>@host
	ruleAWSSecret:   "aws-secret-access-key", // aws_secret_access_key = …, "SecretAccessKey": "…"
	rulePassword:    "password-assignment",   // password= passwd: "passphrase": …
	ruleSecret:      "secret-assignment",     // secret= client_secret: SECRET_KEY=
	ruleToken:       "token-assignment",      // token= access_token: API_TOKEN=
	ruleAPIKey:      "api-key-assignment",    // api_key= apiKey: X-API-Key:
}

// anchor names a set of byte triples on which rules are anchored: all triples of a byte
// from first, one from second and one from third. Each lies inside the fixed part of
// the formats listed (or, for a chat-bot token, just before it), and is rare enough in
// prose, code and logs that rules seldom have to look closer.
type anchor uint8

const (
	anchorSk       anchor = iota // sk-ant-, sk-or-v1-, sk-…
	anchorKUnder                 // gsk_, sk_live_, rk_live_
	anchorAIz                    // AIza
	anchorXai                    // xai-
	anchorHf                     // hf_
	anchorGh                     // ghp_, gho_, ghu_, ghs_, ghr_
	anchorPat                    // github_pat_
	anchorAWS                    // AKIA, ASIA
	anchorXox                    // xoxb- …
	anchorDashes                 // -----BEGIN
	anchorJWT                    // eyJ
	anchorURL                    // scheme://
	anchorDiscord                // a boundary, then the base64 of a decimal id: MT, Mj, ND …
	anchorTelegram               // <bot id>:A
	anchorPass                   // password, passwd, passphrase (any case, as are the keywords below)
	anchorSecret                 // secret
	anchorToken                  // token
	anchorAPI                    // api_key, apikey, api-key
	anchorBearer                 // bearer
	numAnchors
)

const digits = "0123456789"

var anchorDefs = [numAnchors]struct{ first, second, third string }{
	anchorSk:       {"s", "k", "-"},
	anchorKUnder:   {"sr", "k", "_"},
	anchorAIz:      {"A", "I", "z"},
	anchorXai:      {"a", "i", "-"},
	anchorHf:       {"h", "f", "_"},
	anchorGh:       {"g", "h", "pousr"},
	anchorPat:      {"u", "b", "_"},
	anchorAWS:      {"A", "KS", "I"},
	anchorXox:      {"x", "o", "x"},
	anchorDashes:   {"-", "-", "-"},
	anchorJWT:      {"e", "y", "J"},
	anchorURL:      {":", "/", "/"},
	anchorDiscord:  {boundaryBytes(), "MNO", "TjzD"},
	anchorTelegram: {digits, ":", "A"},
	anchorPass:     {"sS", "sS", "wWpP"},
	anchorSecret:   {"eE", "cC", "rR"},
	anchorToken:    {"tT", "oO", "kK"},
	anchorAPI:      {"pP", "iI", "_-kK"},
	anchorBearer:   {"bB", "eE", "aA"},
}

// boundaryBytes are the bytes after which leftOK may let a token start: all but letters,
// digits and '*', and the letters of escapes such as "\n".
func boundaryBytes() string {
	var b []byte
	for c := 0; c < 256; c++ {
		if !isAlnum(byte(c)) && c != '*' || c == 'n' || c == 'r' || c == 't' {
			b = append(b, byte(c))
		}
	}
	return string(b)
}

// check runs the rules anchored on the byte triple at d[j] (j is -1 for the line break
// assumed before the data), whose anchors are the bits of set, and appends what fires.
func check(d []byte, j int, set uint32, ms []match) []match {
	for set != 0 {
		a := anchor(bits.TrailingZeros32(set))
		set &= set - 1
		var m match
		ok := false
		switch a {
		case anchorSk:
			m, ok = skKey(d, j)
		case anchorKUnder:
			if d[j] == 'r' {
				m, ok = prefixed(d, j, "rk_live_", ruleStripe, 16, alnumEnd, nil)
			} else if m, ok = prefixed(d, j-1, "gsk_", ruleGroq, 32, alnumEnd, nil); !ok {
				m, ok = prefixed(d, j, "sk_live_", ruleStripe, 16, alnumEnd, nil)
			}
		case anchorAIz:
			m, ok = google(d, j)
		case anchorXai:
			m, ok = prefixed(d, j-1, "xai-", ruleXAI, 32, alnumEnd, keyish)
		case anchorHf:
			m, ok = prefixed(d, j, "hf_", ruleHuggingFace, 30, alnumEnd, mixedCase)
		case anchorGh:
			m, ok = github(d, j)
		case anchorPat:
			m, ok = githubPAT(d, j-4)
		case anchorAWS:
			m, ok = awsKeyID(d, j)
		case anchorXox:
			m, ok = slack(d, j)
		case anchorDashes:
			m, ok = privateKey(d, j)
		case anchorJWT:
			m, ok = jwt(d, j)
		case anchorURL:
			m, ok = urlPassword(d, j)
		case anchorDiscord:
			m, ok = discord(d, j+1)
		case anchorTelegram:
			m, ok = telegram(d, j)
		case anchorPass:
			m, ok = password(d, j-2)
		case anchorSecret:
			if ks := j - 1; ks >= 0 && foldPrefix(d[ks:], "secret") {
				m, ok = assignment(d, ks, ks+6, ruleSecret)
			}
		case anchorToken:
			if foldPrefix(d[j:], "token") {
				m, ok = assignment(d, j, j+5, ruleToken)
			}
		case anchorAPI:
			m, ok = apiKey(d, j-1)
		case anchorBearer:
			m, ok = bearer(d, j)
		}
		if ok {
			ms = append(ms, m)
		}
	}
	return ms
}

// leftOK reports whether a token may start at d[p]: at the start of data, or after a
// byte that cannot be part of it. A letter that completes an escape such as "\n" counts
// as a boundary, since in a JSON transcript a key often follows an escaped newline. A
// '*' does not, so that masking a neighbour never makes a new token start.
func leftOK(d []byte, p int) bool {
	if p <= 0 {
		return p == 0
	}
	c := d[p-1]
	if c == '*' {
		return false
	}
	if !isAlnum(c) {
		return true
	}
	if c == 'n' || c == 'r' || c == 't' {
		return p >= 2 && d[p-2] == '\\'
	}
	return false
}

// notStar reports whether the token that ends at d[e] really ends there, rather than
// running on into masked bytes: a format of fixed length must not match the front of a
// longer token whose tail was masked.
func notStar(d []byte, e int) bool { return e >= len(d) || d[e] != '*' }

func alnumEnd(d []byte, j int) int {
	for j < len(d) && isAlnum(d[j]) {
		j++
	}
	return j
}

func tokEnd(d []byte, j int) int {
	for j < len(d) && isTok(d[j]) {
		j++
	}
	return j
}

// hasPrefix and foldPrefix compare without converting to a string, which would copy.
func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// foldPrefix is hasPrefix ignoring the case of ASCII letters; p is lower case letters.
func foldPrefix(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if b[i]|0x20 != p[i] {
			return false
		}
	}
	return true
}

// keyish reports whether a key body looks random rather than like words: it mixes
// letters and digits and has a run of 16 or more letters and digits. This keeps
// kebab-case names such as "sk-learn-…" from matching.
func keyish(b []byte) bool {
	digit, letter := false, false
	run, longest := 0, 0
	for _, c := range b {
		switch {
		case isDigit(c):
			digit = true
			run++
		case isLetter(c):
			letter = true
			run++
		default:
			run = 0
		}
		longest = max(longest, run)
	}
	return digit && letter && longest >= 16
}

// mixedCase reports whether b has both upper and lower case letters.
func mixedCase(b []byte) bool {
	upper, lower := false, false
	for _, c := range b {
		upper = upper || isUpper(c)
		lower = lower || isLower(c)
	}
	return upper && lower
}

// prefixed matches a key made of a fixed prefix at d[s] and a body of at least least
// bytes ending at end(d, body start), accepted by ok when ok is not nil. The prefix
// stays readable.
func prefixed(d []byte, s int, prefix string, r rule, least int, end func([]byte, int) int, ok func([]byte) bool) (match, bool) {
	if s < 0 || !hasPrefix(d[s:], prefix) || !leftOK(d, s) {
		return match{}, false
	}
	b := s + len(prefix)
	e := end(d, b)
	if e-b < least || (ok != nil && !ok(d[b:e])) {
		return match{}, false
	}
	return match{rule: r, off: s, end: e, keep: len(prefix), mode: maskToken}, true
}

// skKey matches the keys that start "sk-" at d[s].
func skKey(d []byte, s int) (match, bool) {
	if s < 0 || d[s] != 's' || !leftOK(d, s) {
		return match{}, false
	}
	switch p := d[s+3:]; {
	case hasPrefix(p, "ant-"):
		return prefixed(d, s, "sk-ant-", ruleAnthropic, 20, tokEnd, keyish)
	case hasPrefix(p, "or-v1-"):
		return prefixed(d, s, "sk-or-v1-", ruleOpenRouter, 32, alnumEnd, nil)
	}
	m, ok := prefixed(d, s, "sk-", ruleOpenAI, 32, tokEnd, keyish)
	if ok {
		// Keep the kind of key readable too.
		for _, kind := range []string{"proj-", "svcacct-", "admin-"} {
			if hasPrefix(d[s+3:], kind) {
				m.keep += len(kind)
				break
			}
		}
	}
	return m, ok
}

// google matches "AIza" at d[s] and exactly 35 more characters.
func google(d []byte, s int) (match, bool) {
	if s < 0 || !hasPrefix(d[s:], "AIza") || !leftOK(d, s) {
		return match{}, false
	}
	e := tokEnd(d, s+4)
	if e-s != 39 || !notStar(d, e) {
		return match{}, false
	}
	return match{rule: ruleGoogle, off: s, end: e, keep: 4, mode: maskToken}, true
}

// github matches personal, OAuth, user-to-server, server-to-server and refresh tokens:
// "ghp_" and the like and 36 letters and digits.
func github(d []byte, s int) (match, bool) {
	if s+4 > len(d) || d[s+3] != '_' {
		return match{}, false
	}
	switch d[s+2] {
	case 'p', 'o', 'u', 's', 'r':
		return prefixed(d, s, string(d[s:s+4]), ruleGitHub, 30, alnumEnd, nil)
	}
	return match{}, false
}

// githubPAT matches a fine-grained personal access token: "github_pat_" and 82 letters,
// digits and underscores.
func githubPAT(d []byte, s int) (match, bool) {
	if s < 0 {
		return match{}, false
	}
	return prefixed(d, s, "github_pat_", ruleGitHub, 40, func(d []byte, j int) int {
		for j < len(d) && (isAlnum(d[j]) || d[j] == '_') {
			j++
		}
		return j
	}, nil)
}

// awsKeyID matches an access key id: "AKIA" (long-term) or "ASIA" (temporary) and 16
// upper-case letters and digits, as a whole word.
func awsKeyID(d []byte, s int) (match, bool) {
	if s+20 > len(d) || d[s+2] != 'I' || d[s+3] != 'A' || !leftOK(d, s) {
		return match{}, false
	}
	for _, c := range d[s+4 : s+20] {
		if !isUpper(c) && !isDigit(c) {
			return match{}, false
		}
	}
	if e := s + 20; e < len(d) && (isAlnum(d[e]) || d[e] == '*') {
		return match{}, false
	}
	return match{rule: ruleAWSKeyID, off: s, end: s + 20, keep: 4, mode: maskToken}, true
}

// slack matches bot, user, app-level, refresh and configuration tokens ("xoxb-" …).
func slack(d []byte, s int) (match, bool) {
	if s+5 > len(d) || d[s+2] != 'x' || d[s+4] != '-' || bytes.IndexByte([]byte("baprse"), d[s+3]) < 0 {
		return match{}, false
	}
	return prefixed(d, s, string(d[s:s+5]), ruleSlack, 20, func(d []byte, j int) int {
		for j < len(d) && (isAlnum(d[j]) || d[j] == '-') {
			j++
		}
		return j
	}, func(b []byte) bool { return bytes.ContainsAny(b, "0123456789") })
}

// telegram matches a chat-bot token, "<bot id>:<35 characters>", given the last digit
// of the id at d[i]. The id (8 to 10 digits, which may follow "bot" as in API URLs) is
// public and stays readable. Issued tokens' secret part starts with 'A' ("AAE…",
// "AAH…"); requiring it keeps the many "hh:" of timestamps from costing a look.
func telegram(d []byte, i int) (match, bool) {
	a := i
	for a > 0 && isDigit(d[a-1]) && i-a < 10 {
		a--
	}
	if n := i + 1 - a; n < 8 || n > 10 || (a > 0 && isDigit(d[a-1])) {
		return match{}, false
	}
	if !leftOK(d, a) && !(a >= 3 && string(d[a-3:a]) == "bot") {
		return match{}, false
	}
	j := i + 2
	e := tokEnd(d, j)
	if e-j != 35 || !notStar(d, e) || !mixedCase(d[j:e]) {
		return match{}, false
	}
	return match{rule: ruleTelegram, off: a, end: e, keep: j - a, mode: maskToken}, true
}

// discord matches a chat-bot token: the base64 of a decimal user id, a dot, 6 or 7
// characters, a dot, and 27 to 40 characters. Decoding the first part and finding only
// digits makes false positives all but impossible.
func discord(d []byte, s int) (match, bool) {
	if !leftOK(d, s) {
		return match{}, false
	}
	e1 := alnumEnd(d, s)
	if n := e1 - s; n < 24 || n > 28 || e1 >= len(d) || d[e1] != '.' {
		return match{}, false
	}
	var id [24]byte
	n, err := base64.RawStdEncoding.Decode(id[:], d[s:e1])
	if err != nil || n < 17 {
		return match{}, false
	}
	for _, c := range id[:n] {
		if !isDigit(c) {
			return match{}, false
		}
	}
	e2 := tokEnd(d, e1+1)
	if n := e2 - e1 - 1; n < 6 || n > 7 || e2 >= len(d) || d[e2] != '.' {
		return match{}, false
	}
	e3 := tokEnd(d, e2+1)
	if n := e3 - e2 - 1; n < 27 || n > 40 || !notStar(d, e3) {
		return match{}, false
	}
	return match{rule: ruleDiscord, off: s, end: e3, keep: 2, mode: maskToken}, true
}

// jwt matches a JSON web token starting at d[s]: two base64url parts that both decode
// to a JSON object (so start "eyJ"), and a signature part, which may be empty.
func jwt(d []byte, s int) (match, bool) {
	if s < 0 || d[s] != 'e' || !leftOK(d, s) {
		return match{}, false
	}
	e1 := tokEnd(d, s)
	if e1-s < 10 || e1 >= len(d) || d[e1] != '.' || !hasPrefix(d[e1+1:], "eyJ") {
		return match{}, false
	}
	e2 := tokEnd(d, e1+1)
	if e2-e1-1 < 10 || e2 >= len(d) || d[e2] != '.' {
		return match{}, false
	}
	e3 := tokEnd(d, e2+1)
	return match{rule: ruleJWT, off: s, end: e3, keep: 3, mode: maskToken}, true
}

// bearer matches the credential after the "Bearer" scheme of an Authorization header
// (or anywhere "Bearer" is followed by a token): at least 20 characters of the token68
// alphabet, with letters and digits, so prose like "the bearer token" does not match.
func bearer(d []byte, s int) (match, bool) {
	if !foldPrefix(d[s:], "bearer") || !leftOK(d, s) {
		return match{}, false
	}
	j := s + 6
	if j >= len(d) || (d[j] != ' ' && d[j] != '\t') {
		return match{}, false
	}
	for j < len(d) && (d[j] == ' ' || d[j] == '\t') {
		j++
	}
	e := j
	for e < len(d) && (isTok(d[e]) || d[e] == '.' || d[e] == '~' || d[e] == '+' || d[e] == '/') {
		e++
	}
	for e < len(d) && d[e] == '=' {
		e++
	}
	if e-j < 20 || !bytes.ContainsAny(d[j:e], "0123456789") || bytes.IndexFunc(d[j:e], func(r rune) bool { return r < 0x80 && isLetter(byte(r)) }) < 0 {
		return match{}, false
	}
	return match{rule: ruleBearer, off: j, end: e, keep: 0, mode: maskToken}, true
}

// urlPassword matches the password in the user information of a URL,
// "scheme://user:password@host", given the ":/" after the scheme at d[i]. Connection
// strings (databases, brokers, proxies) carry passwords this way.
func urlPassword(d []byte, i int) (match, bool) {
	if i+2 >= len(d) || d[i+2] != '/' {
		return match{}, false
	}
	a := i
	for a > 0 && i-a < 32 && (isAlnum(d[a-1]) || d[a-1] == '+' || d[a-1] == '.' || d[a-1] == '-') {
		a--
	}
	if i-a < 2 || !isLetter(d[a]) {
		return match{}, false
	}
	// The user information ends at the authority's last '@'; a password may hold an
	// unencoded '@' but not a '/'.
	u := i + 3
	colon, at := -1, -1
	for k := u; k < len(d) && k < u+256; k++ {
		c := d[k]
		if c == '@' {
			at = k
		} else if c == ':' && colon < 0 && at < 0 {
			colon = k
		} else if urlStop(c) {
			break
		}
	}
	if at < 0 || colon < 0 || colon > at {
		return match{}, false
	}
	if secretLen(d, colon+1, at, maskValue) < 3 || placeholder(d[colon+1:at]) {
		return match{}, false
	}
	return match{rule: ruleURLPassword, off: colon + 1, end: at, keep: 0, mode: maskValue}, true
}

// urlStop reports whether c ends a URL's authority, or the URL. A '*' does too: it
// may stand for any of these, masked.
func urlStop(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return true
	}
	switch c {
	case '/', '?', '#', '"', '\'', '\\', '<', '>', '`', '{', '}', '[', ']', '|', '^', '*':
		return true
	}
	return false
}

// privateKey matches the body of a PEM private key block (RSA, EC, DSA, OpenSSH,
// encrypted PKCS#8, PGP …) given the "--" that starts its BEGIN line at d[i]. The BEGIN
// and END lines stay readable; the body is masked but for its line breaks and header
// punctuation. A truncated block (a key cut short in a transcript, say) is masked as far
// as it reaches.
func privateKey(d []byte, i int) (match, bool) {
	if (i > 0 && d[i-1] == '-') || !hasPrefix(d[i:], "-----BEGIN ") {
		return match{}, false
	}
	j := i + len("-----BEGIN ")
	for j < len(d) && j-i < 80 && (isUpper(d[j]) || isDigit(d[j]) || d[j] == ' ') {
		j++
	}
	label := bytes.TrimRight(d[i+len("-----BEGIN "):j], " ")
	if !hasPrefix(d[j:], "-----") || !(bytes.HasSuffix(label, []byte("PRIVATE KEY")) || bytes.HasSuffix(label, []byte("PRIVATE KEY BLOCK"))) {
		return match{}, false
	}
	bs := j + len("-----")
	be := pemBody(d, bs)
	if secretLen(d, bs, be, maskToken) < 16 {
		return match{}, false
	}
	return match{rule: rulePrivateKey, off: bs, end: be, keep: 0, mode: maskToken}, true
}

// pemBody returns the end of the PEM body starting at d[bs]: its lines are header lines
// ("Proc-Type: 4,ENCRYPTED", before any base64), blank lines and base64 lines, broken by
// raw or escaped line breaks; it ends at "-----" (the END line), at the first line that
// is none of these, or before the first line holding a '*'. A masked body thus ends
// where it starts, and masking other bytes (the password after "PGPASSWORD=" on a line
// that was not base64 for its blanks, say) can only shorten a body, never make it take
// in text that a first pass left readable.
func pemBody(d []byte, bs int) int {
	limit := min(len(d), bs+64<<10)
	end, j := bs, bs
	headers := true
	for j < limit {
		k := j
		colon := false
	line:
		for k < limit {
			switch c := d[k]; {
			case isB64(c) || c == ',' || c == '.' || c == ' ' || c == '\t':
			case c == ':':
				colon = true
			case c == '-':
				if hasPrefix(d[k:], "-----") {
					break line
				}
			case c == '\\' && k+1 < limit && d[k+1] == '/': // "\/", as some encoders write '/'
				k++
			case c == '*':
				return end
			default:
				break line
			}
			k++
		}
		t := bytes.TrimRight(d[j:k], " \t")
		switch {
		case len(t) == 0:
		case b64Line(t):
			headers = false
			end = j + len(t)
		case headers && colon:
			end = j + len(t)
		default:
			return end
		}
		n := lineBreak(d, k)
		if n == 0 {
			return end
		}
		j = k + n
	}
	return end
}

// b64Line reports whether t holds only base64 characters.
func b64Line(t []byte) bool {
	for k := 0; k < len(t); k++ {
		switch c := t[k]; {
		case isB64(c):
		case c == '\\' && k+1 < len(t) && t[k+1] == '/':
			k++
		default:
			return false
		}
	}
	return true
}

// lineBreak returns the length of the line break at d[k]: "\n", "\r", "\r\n", or an
// escaped "\n" or "\r" at any depth of JSON nesting ("\\n", "\\\\n" …); 0 if none.
func lineBreak(d []byte, k int) int {
	if k >= len(d) {
		return 0
	}
	switch d[k] {
	case '\n':
		return 1
	case '\r':
		if k+1 < len(d) && d[k+1] == '\n' {
			return 2
		}
		return 1
	case '\\':
		j := k
		for j < len(d) && d[j] == '\\' {
			j++
		}
		if j < len(d) && (d[j] == 'n' || d[j] == 'r') {
			return j + 1 - k
		}
	}
	return 0
}
