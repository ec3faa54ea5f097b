package redact

import "bytes"

// Assignments: a value given to a name that says it is secret, in the forms configs,
// shells, code, HTTP and JSON use:
//
//	PASSWORD=hunter2hunter2        export API_KEY="…"        --password hunter2hunter2
//	"password": "hunter2hunter2"   password: hunter2hunter2  X-API-Key: …
//	\"client_secret\": \"…\"  (inside a JSON string, escaped once or more)
//
// Only the value is masked. What is not taken for a secret, to spare code, docs and
// transcript metadata:
//
//   - names that merely contain a keyword: "token_count", "max_tokens", "password_hash",
//     "secretName", "next_page_token"; the name must end with the keyword (or with
//     "secret_key" / "secret_access_key");
//   - values under 6 characters (masked '*' not counted), and placeholders: empty,
//     "<…>", "<<REPLACE_WITH_…>>", "${VAR}" and anything with both braces, "$VAR" and
//     other values starting '$', "%VAR%", "%s", a value of one repeated character
//     ("xxxxxx", "******"), one holding "***" or "...", a few words such as "changeme",
//     "undefined", "null", and names such as "your_api_key_here" or "DB_PASSWORD"
//     (letters, separators and blanks only, containing a keyword or "your"/"example":
//     also "expected token"), code joining strings ("\" + tok + \"");
//   - in unquoted values: code (a call, index or literal "getpass(", a dotted path
//     "self.password", a hex literal "0x0C"), and JSON numbers and literals
//     ("token": 12345678 stays, to keep JSON valid); after ':', a flag or a spaced
//     " = ", a word or an identifier without digits ("Password: Please …",
//     "token: newToken,", "api_key = key_from_env"); values starting '&', '*' or '-'
//     ("Token: &tokenValue", "token: -want/+got");
//   - comparisons ("password == x").
//
// Quoted values are always taken, whatever they hold (a passphrase may be words).
//
// A real password of letters only written after ':', a flag or " = " (YAML, INI), or
// one of letters that contains "password", is therefore missed: a deliberate trade
// against masking ordinary prose and code, which transcripts are full of. Generated
// secrets hold digits and are not affected.

// password matches the keywords "password", "passwd" and "passphrase" at d[ks].
func password(d []byte, ks int) (match, bool) {
	if ks < 0 || !foldPrefix(d[ks:], "pass") {
		return match{}, false
	}
	rest := d[ks+4:]
	for _, w := range []string{"word", "wd", "phrase"} {
		if foldPrefix(rest, w) {
			return assignment(d, ks, ks+4+len(w), rulePassword)
		}
	}
	return match{}, false
}

// apiKey matches the keyword "api_key" ("apikey", "api-key", any case) at d[ks].
func apiKey(d []byte, ks int) (match, bool) {
	if ks < 0 || !foldPrefix(d[ks:], "api") {
		return match{}, false
	}
	j := ks + 3
	if j < len(d) && (d[j] == '_' || d[j] == '-') {
		j++
	}
	if !foldPrefix(d[j:], "key") {
		return match{}, false
	}
	return assignment(d, ks, j+3, ruleAPIKey)
}

// tokenNotSecret are names ending in "token" (lower case, separators dropped) whose
// values are not credentials: pagination cursors and the special tokens of tokenizers.
var tokenNotSecret = []string{
	"nexttoken", "pagetoken", "continuationtoken", "synctoken", "cancellationtoken",
	"eostoken", "bostoken", "padtoken", "unktoken", "septoken", "clstoken", "masktoken", "maxtoken",
}

// placeholderWords are values (lower case) that stand for a secret rather than being one.
var placeholderWords = []string{
	"changeme", "change_me", "changeit", "undefined", "null", "none", "nil", "true", "false",
	"example", "placeholder", "redacted", "notset", "unset", "required", "password", "secret",
}

// placeholderParts mark a value made of letters, separators and blanks as a name, a
// placeholder or a phrase about a secret rather than one: "DB_PASSWORD",
// "your-api-key-here", "expected token".
var placeholderParts = []string{
	"password", "passwd", "secret", "token", "apikey", "api_key", "api-key",
	"your", "example", "placeholder", "changeme", "dummy", "redacted",
}

// assignment matches the value assigned to the name whose keyword is d[ks:ke].
func assignment(d []byte, ks, ke int, r rule) (match, bool) {
	none := match{}
	// The name must end with the keyword, give or take a few suffixes.
	e := ke
	for e < len(d) && e-ke <= 16 && isTok(d[e]) {
		e++
	}
	var tb [24]byte
	tail := fold(tb[:0], d[ke:e])
	switch {
	case len(tail) == 0:
	case r == ruleSecret && (string(tail) == "key" || string(tail) == "accesskey"):
	default:
		return none, false
	}
	a := ks
	for a > 0 && ks-a < 48 && (isTok(d[a-1]) || d[a-1] == '.' || d[a-1] == '*') {
		a--
	}
	if bytes.IndexByte(d[a:ks], '*') >= 0 {
		// Part of the name was masked: whether it named a secret (or "next_token")
		// cannot be told, and the value was judged with the name before masking.
		return none, false
	}
	var nb [80]byte
	name := fold(nb[:0], d[a:ke])
	switch r {
	case ruleSecret:
		if bytes.Contains(name, []byte("aws")) || string(tail) == "accesskey" {
			r = ruleAWSSecret
		}
	case ruleToken:
		for _, s := range tokenNotSecret {
			if bytes.HasSuffix(name, []byte(s)) {
				return none, false
			}
		}
	}

	// The closing quote of a quoted name: "password", \"password\", 'password'.
	j := e
	keyQuote, n, _ := quoteAt(d, j)
	j = skipBlank(d, j+n)
	if j >= len(d) {
		return none, false
	}
	// Only in a query string ("a=1&password=…&b=2"), written without blanks, does '&'
	// end a value; elsewhere it is part of the password.
	query := j == e+n && d[j] == '='
	// A name set apart from '=' by blanks ("token = x") reads as code or an INI file
	// rather than an environment file, and its value is judged like one after ':'.
	colon := j > e+n && d[j] == '='

	switch d[j] {
	case '=': // =, =>
		if j+1 < len(d) && d[j+1] == '=' {
			return none, false
		}
		j++
		if j < len(d) && d[j] == '>' {
			j++
		} else if k := skipBackslashes(d, j); k > j && (hasPrefix(d[k:], "u003e") || hasPrefix(d[k:], "u003E")) {
			j = k + 5 // "=>" from an encoder that escapes '>'
		}
	case ':': // :, :=
		if j+1 < len(d) && d[j+1] == ':' {
			return none, false
		}
		j++
		if j < len(d) && d[j] == '=' {
			j++
		} else {
			colon = true
		}
	default:
		// A command-line flag and its value: --password hunter2hunter2.
		if !(keyQuote == 0 && j > e && ks-a >= 2 && d[a] == '-' && d[a+1] == '-') {
			return none, false
		}
		colon = true // judged like a value after ':'
	}
	query = query && j < len(d) && d[j] != ' ' && d[j] != '\t'
	j = skipBlank(d, j)
	if j >= len(d) {
		return none, false
	}

	var vs, ve int
	q, n, b := quoteAt(d, j)
	quoted := q != 0
	if quoted {
		vs = j + n
		var ok bool
		if ve, ok = closeQuote(d, vs, q, b); !ok {
			return none, false
		}
	} else {
		if keyQuote == '"' && colon {
			// "token": 12345678 is a JSON number (or true, null …), not a string;
			// masking it would make the JSON invalid.
			return none, false
		}
		vs, ve = j, j
		for ve < len(d) && ve-vs < 4096 && !valueStop(d[ve]) && !(query && d[ve] == '&') {
			ve++
		}
	}
	v := d[vs:ve]
	if secretLen(d, vs, ve, maskValue) < 6 || placeholder(v) {
		return none, false
	}
	if !quoted {
		if ve < len(d) && (d[ve] == '(' || d[ve] == '[' || d[ve] == '{') || dottedPath(v) || hexLiteral(v) ||
			v[0] == '&' || v[0] == '*' || v[0] == '-' {
			// code: getpass(), os.environ[…], Token{…}, self.password, 0x0C,
			// &tokenValue, *out.Token; or a flag or list item: "token: -want/+got"
			return none, false
		}
		if colon && (proseWord(v) || identifier(v)) {
			// "Password: Please …", "token: newToken,", "api_key = key_from_env"
			return none, false
		}
	}
	return match{rule: r, off: vs, end: ve, keep: 0, mode: maskValue}, true
}

// fold appends b lower-cased, without '_', '-' and '.', to dst (as far as it has room).
func fold(dst, b []byte) []byte {
	for _, c := range b {
		if c == '_' || c == '-' || c == '.' {
			continue
		}
		if len(dst) == cap(dst) {
			break
		}
		if isUpper(c) {
			c |= 0x20
		}
		dst = append(dst, c)
	}
	return dst
}

func skipBackslashes(d []byte, j int) int {
	for j < len(d) && d[j] == '\\' {
		j++
	}
	return j
}

func skipBlank(d []byte, j int) int {
	for j < len(d) && (d[j] == ' ' || d[j] == '\t') {
		j++
	}
	return j
}

// quoteAt reports whether a quote, preceded by b escaping backslashes, starts at d[j]:
// the quote character (0 if none) and the length n = b+1 of the sequence.
func quoteAt(d []byte, j int) (q byte, n, b int) {
	k := j
	for k < len(d) && d[k] == '\\' && k-j < 16 {
		k++
	}
	if k < len(d) && (d[k] == '"' || d[k] == '\'') {
		return d[k], k - j + 1, k - j
	}
	return 0, 0, 0
}

// closeQuote finds the end of a quoted value starting at d[vs], opened by quote q after
// b backslashes, and reports whether the value is sound to mask: it closes within 1 KiB
// on the same line, and no '"' inside it could end an enclosing JSON string (which
// would put JSON syntax inside the masked span).
//
// A '"' opened after b = 2^depth-1 backslashes sits in a string nested depth levels
// deep in JSON strings (0: plain JSON or source code, 1: JSON inside a JSON string …).
// Single-quoted values are taken only unescaped (b = 0), as in shell, YAML or Python
// text, which JSON does not escape.
func closeQuote(d []byte, vs int, q byte, b int) (int, bool) {
	depth := -1
	switch {
	case q == '\'' && b == 0:
		depth = 0
	case q == '"':
		for l, k := 0, 0; l < 5; l, k = l+1, 2*k+1 {
			if b == k {
				depth = l
			}
		}
	}
	if depth < 0 {
		return 0, false
	}
	limit := min(len(d), vs+1024)
	for k := vs; k < limit; k++ {
		c := d[k]
		if c == '\n' || c == '\r' {
			return 0, false
		}
		if c == '\\' {
			// A line break of the text the value sits in, escaped for the enclosing
			// strings: the quote opened no value on this line.
			r := 1
			for k+r < limit && d[k+r] == '\\' {
				r++
			}
			if depth > 0 && r == 1<<depth-1 && k+r < limit && (d[k+r] == 'n' || d[k+r] == 'r') {
				return 0, false
			}
			k += r - 1
			continue
		}
		if c != '"' && c != q {
			continue
		}
		nb := 0
		for k-nb > vs && d[k-nb-1] == '\\' {
			nb++
		}
		end := k
		if q == '\'' {
			if nb%2 == 1 {
				continue // escaped
			}
			if c != '\'' {
				return 0, false // a bare '"' inside '…'
			}
		} else {
			switch quoteRole(nb, depth) {
			case quoteInner:
				continue
			case quoteBroken:
				return 0, false
			}
			end = k - (1<<depth - 1)
		}
		// A closing quote is followed by punctuation or space, not by a word: one
		// that is was the closing quote of a string the name sat in, as in
		// print("Password: ") …, and opened nothing.
		// ('*' counts as a word: it may have been one before masking.)
		if k+1 < len(d) && (isAlnum(d[k+1]) || d[k+1] == '_' || d[k+1] == '*') {
			return 0, false
		}
		return end, true
	}
	return 0, false
}

const (
	quoteInner = iota
	quoteClosing
	quoteBroken
)

// quoteRole tells what a '"' after nb backslashes is to a string nested depth levels
// deep: its closing quote, a quote escaped inside it, or a quote that ends an enclosing
// string. Each level of nesting escapes the level inside it once more.
func quoteRole(nb, depth int) int {
	for range depth {
		if nb%2 == 0 {
			return quoteBroken
		}
		nb = (nb - 1) / 2
	}
	if nb%2 == 0 {
		return quoteClosing
	}
	return quoteInner
}

// valueStop reports whether c ends an unquoted value.
func valueStop(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return true
	}
	switch c {
	case '"', '\'', '\\', '`', ',', ';', '|', '(', ')', '[', ']', '{', '}', '<', '>':
		return true
	}
	return false
}

// placeholder reports whether v stands for a secret rather than being one; see the
// comment at the top of this file.
func placeholder(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	first, last := v[0], v[len(v)-1]
	switch {
	case first == '$', first == '<' && last == '>', first == '%' && last == '%', first == '!',
		first == '+', last == '+': // "…" + name + "…" cut at its quotes
		return true
	case bytes.IndexByte(v, '{') >= 0 && bytes.IndexByte(v, '}') >= 0:
		return true
	}
	for _, s := range []string{"***", "...", "%s", "%v", "%(", "\" + ", "` + "} {
		if bytes.Contains(v, []byte(s)) {
			return true
		}
	}
	same, name := true, true
	for _, c := range v {
		same = same && c|0x20 == first|0x20
		name = name && (isLetter(c) || c == '_' || c == '-' || c == '.' || c == ' ')
	}
	if same {
		return true
	}
	if len(v) > 64 {
		return false
	}
	var lb [64]byte
	lower := lb[:len(v)]
	for i, c := range v {
		if isUpper(c) {
			c |= 0x20
		}
		lower[i] = c
	}
	for _, w := range placeholderWords {
		if string(lower) == w {
			return true
		}
	}
	if name {
		for _, w := range placeholderParts {
			if bytes.Contains(lower, []byte(w)) {
				return true
			}
		}
	}
	return false
}

// dottedPath reports whether v is a dotted identifier path such as "self.password" or
// "process.env.TOKEN": in code, a reference rather than a literal.
func dottedPath(v []byte) bool {
	parts := 0
	for p := range bytes.SplitSeq(v, []byte(".")) {
		if len(p) == 0 || isDigit(p[0]) {
			return false
		}
		for _, c := range p {
			if !isAlnum(c) && c != '_' {
				return false
			}
		}
		parts++
	}
	return parts >= 2
}

// identifier reports whether v is made of letters, '_' and '-' only: after ':' a
// variable in code or a name rather than a generated secret.
func identifier(v []byte) bool {
	for _, c := range v {
		if !isLetter(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// hexLiteral reports whether v is a hexadecimal number literal such as "0x000C" or
// "-0x3f879678": a constant in code.
func hexLiteral(v []byte) bool {
	if len(v) > 0 && v[0] == '-' {
		v = v[1:]
	}
	if len(v) < 3 || v[0] != '0' || v[1]|0x20 != 'x' {
		return false
	}
	for _, c := range v[2:] {
		if !isHex(c) {
			return false
		}
	}
	return true
}

// proseWord reports whether v is a plain word, "please" or "Please" (one trailing
// punctuation mark allowed): after "Password:" in prose, text rather than a secret.
func proseWord(v []byte) bool {
	if n := len(v); n > 1 && bytes.IndexByte([]byte(".,!?:"), v[n-1]) >= 0 {
		v = v[:n-1]
	}
	for i, c := range v {
		if !isLower(c) && !(i == 0 && isUpper(c)) {
			return false
		}
	}
	return len(v) > 0
}
