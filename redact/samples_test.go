package redact

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
)

// The keys in these tests are made up: random characters in the shape of each format,
// generated at run time from a seed (so no key-shaped literal sits in the source), and
// never valid anywhere.

const (
	alnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64url  = alnum + "-_"
	b64std  = alnum + "+/"
	hexLow  = "0123456789abcdef"
	base32  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// fake returns n characters of alphabet, the same for the same seed.
func fake(seed string, n int, alphabet string) string {
	h := fnv.New64a()
	h.Write([]byte(seed))
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// secretSample is text holding one secret.
type secretSample struct {
	name   string
	rule   string
	text   string
	secret string // the bytes the hit must span; found in text
}

func b64json(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }

func pemBlock(label, seed string, lines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-----BEGIN %s-----\n", label)
	for i := range lines {
		b.WriteString(fake(fmt.Sprint(seed, i), 64, b64std))
		b.WriteByte('\n')
	}
	b.WriteString(fake(seed+"last", 20, b64std) + "==\n")
	fmt.Fprintf(&b, "-----END %s-----\n", label)
	return b.String()
}

// pemBodyOf returns the part of a PEM block between its BEGIN and END lines.
func pemBodyOf(block string) string {
	i := strings.Index(block, "-----\n") + len("-----")
	j := strings.Index(block, "-----END")
	return strings.TrimRight(block[i:j], "\n")
}

func samples() []secretSample {
	ant := "sk-ant-api03-" + fake("ant", 93, b64url) + "AA"
	antAdmin := "sk-ant-admin01-" + fake("antadm", 93, b64url) + "AA"
	oaiLegacy := "sk-" + fake("oai1", 20, alnum) + "T3BlbkFJ" + fake("oai2", 20, alnum)
	oaiProj := "sk-proj-" + fake("oaiproj", 156, b64url)
	oaiSvc := "sk-svcacct-" + fake("oaisvc", 120, b64url)
	openrouter := "sk-or-v1-" + fake("or", 64, hexLow)
	google := "AIza" + fake("google", 35, b64url)
	groq := "gsk_" + fake("groq", 52, alnum)
	xai := "xai-" + fake("xai", 80, alnum)
	hf := "hf_" + fake("hf", 34, letters)
	ghp := "ghp_" + fake("ghp", 36, alnum)
	gho := "gho_" + fake("gho", 36, alnum)
	ghs := "ghs_" + fake("ghs", 36, alnum)
	ghpat := "github_pat_" + fake("pat1", 22, alnum) + "_" + fake("pat2", 59, alnum)
	akia := "AKIA" + fake("akia", 16, base32)
	asia := "ASIA" + fake("asia", 16, base32)
	awsSecret := fake("awssecret", 40, b64std)
	slackBot := "xoxb-" + fake("sl1", 13, "0123456789") + "-" + fake("sl2", 13, "0123456789") + "-" + fake("sl3", 24, alnum)
	slackUser := "xoxp-" + fake("su1", 12, "0123456789") + "-" + fake("su2", 12, "0123456789") + "-" + fake("su3", 13, "0123456789") + "-" + fake("su4", 32, hexLow)
	tgID := fake("tgid", 9, "123456789")
	tgSecret := "AAH" + fake("tg", 32, b64url)
	discord := base64.RawStdEncoding.EncodeToString([]byte("1"+fake("dcid", 17, "0123456789"))) + "." + fake("dc2", 6, b64url) + "." + fake("dc3", 38, b64url)
	stripe := "sk_live_" + fake("stripe", 99, alnum)
	stripeR := "rk_live_" + fake("stripe-r", 24, alnum)
	jwtTok := b64json(`{"alg":"HS256","typ":"JWT"}`) + "." + b64json(`{"sub":"1234567890","name":"Test User","iat":1716239022}`) + "." + fake("jwtsig", 43, b64url)
	opaque := fake("bearer", 48, alnum) + "9"
	rsa := pemBlock("RSA PRIVATE KEY", "rsa", 12)
	ossh := pemBlock("OPENSSH PRIVATE KEY", "ossh", 6)
	pk8 := pemBlock("PRIVATE KEY", "pk8", 8)
	encPEM := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC," + fake("iv", 32, "0123456789ABCDEF") + "\n\n" +
		fake("enc1", 64, b64std) + "\n" + fake("enc2", 40, b64std) + "\n-----END RSA PRIVATE KEY-----\n"

	jsonPEM, _ := json.Marshal(map[string]string{"type": "service_account", "private_key": pk8})

	return []secretSample{
		{"anthropic env", "anthropic-api-key", "export MODEL_API_KEY=" + ant + "\n", ant},
		{"anthropic admin in prose", "anthropic-api-key", "use the admin key " + antAdmin + " for org calls", antAdmin},
		{"anthropic after escaped newline", "anthropic-api-key", `{"text":"my key:\n` + ant + `\nthanks"}`, ant},
		{"openai legacy", "openai-api-key", `LLM_KEY="` + oaiLegacy + `"`, oaiLegacy},
		{"openai project", "openai-api-key", "client = Client(key='" + oaiProj + "')", oaiProj},
		{"openai service account", "openai-api-key", "key: " + oaiSvc, oaiSvc},
		{"openrouter", "openrouter-api-key", `{"Authorization":"Bearer ` + openrouter + `"}`, openrouter},
		{"google", "google-api-key", "https://maps.example.com/api?key=" + google + "&q=1", google},
		{"groq", "groq-api-key", "INFERENCE_KEY=" + groq, groq},
		{"xai", "xai-api-key", "CHAT_KEY=" + xai + "\n", xai},
		{"hugging face", "huggingface-token", "login with " + hf, hf},
		{"github classic", "github-token", "git clone https://" + ghp + "@example.com/o/r.git", ghp},
		{"github oauth", "github-token", `"token": "` + gho + `"`, gho},
		{"github server", "github-token", "CI_TOKEN=" + ghs, ghs},
		{"github fine-grained", "github-token", "export TOKEN=" + ghpat, ghpat},
		{"aws key id", "aws-access-key-id", "aws_access_key_id = " + akia + "\n", akia},
		{"aws temporary key id", "aws-access-key-id", `{"AccessKeyId": "` + asia + `"}`, asia},
		{"aws secret ini", "aws-secret-access-key", "aws_secret_access_key = " + awsSecret + "\n", awsSecret},
		{"aws secret env", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY=" + awsSecret, awsSecret},
		{"aws secret sts json", "aws-secret-access-key", `{"SecretAccessKey": "` + awsSecret + `", "SessionToken": "x"}`, awsSecret},
		{"slack bot", "slack-token", "CHAT_BOT_TOKEN=" + slackBot, slackBot},
		{"slack user", "slack-token", "token " + slackUser + " revoked", slackUser},
		{"telegram", "telegram-bot-token", "BOT_TOKEN=" + tgID + ":" + tgSecret, tgID + ":" + tgSecret},
		{"telegram api url", "telegram-bot-token", "curl https://api.example.org/bot" + tgID + ":" + tgSecret + "/getMe", tgID + ":" + tgSecret},
		{"discord", "discord-bot-token", "client.run('" + discord + "')", discord},
		{"stripe secret", "stripe-secret-key", "payments.key = '" + stripe + "'", stripe},
		{"stripe restricted", "stripe-secret-key", "PAYMENTS_KEY=" + stripeR, stripeR},
		{"rsa private key", "private-key", "cat id_rsa\n" + rsa, pemBodyOf(rsa)},
		{"openssh private key", "private-key", ossh, pemBodyOf(ossh)},
		{"pkcs8 private key", "private-key", pk8, pemBodyOf(pk8)},
		{"encrypted pem with headers", "private-key", encPEM, pemBodyOf(encPEM)},
		{"private key in json", "private-key", string(jsonPEM), strings.ReplaceAll(pemBodyOf(pk8), "\n", `\n`)},
		{"jwt bearer", "jwt", "Authorization: Bearer " + jwtTok, jwtTok},
		{"jwt in cookie", "jwt", "Set-Cookie: session=" + jwtTok + "; HttpOnly", jwtTok},
		{"opaque bearer", "bearer-token", "-H 'Authorization: Bearer " + opaque + "'", opaque},
		{"url password", "url-password", "DATABASE_URL=db://app:S3cr3t-Pa55@db.internal:5432/app", "S3cr3t-Pa55"},
		{"url password with at", "url-password", "cache://:p@ss-w0rd!@cache:6379/0", "p@ss-w0rd!"},
		{"password env", "password-assignment", "DBPASSWORD=hunter2hunter2 dbclient", "hunter2hunter2"},
		{"password json", "password-assignment", `{"user":"admin","password":"hunter2hunter2"}`, "hunter2hunter2"},
		{"password json escaped", "password-assignment", `{"text":"config: {\"password\": \"hunter2hunter2\"}"}`, "hunter2hunter2"},
		{"password json twice escaped", "password-assignment", `{"text":"{\"input\":\"{\\\"password\\\": \\\"hunter2hunter2\\\"}\"}"}`, "hunter2hunter2"},
		{"password yaml", "password-assignment", "db:\n  password: s3cr3t!x\n", "s3cr3t!x"},
		{"password yaml quoted", "password-assignment", "  password: 'correct horse battery staple'\n", "correct horse battery staple"},
		{"passwd ini", "password-assignment", "passwd = Tr0ub4dor&3", "Tr0ub4dor&3"},
		{"passphrase", "password-assignment", `"passphrase": "open sesame 42"`, "open sesame 42"},
		{"password flag", "password-assignment", "dbclient --password hunter2hunter2 -h db", "hunter2hunter2"},
		{"password flag equals", "password-assignment", "dbclient --password=hunter2hunter2 -h db", "hunter2hunter2"},
		{"password python", "password-assignment", `conn = connect(host="db", password="pa55-w0rd")`, "pa55-w0rd"},
		{"password go", "password-assignment", `password := "hunter2hunter2"`, "hunter2hunter2"},
		{"password form", "password-assignment", "user=bob&password=hunter2hunter2&next=/", "hunter2hunter2"},
		{"password prose with digits", "password-assignment", "Password: Summer2024!", "Summer2024!"},
		{"password hash arrow", "password-assignment", `'password' => 'hunter2hunter2',`, "hunter2hunter2"},
		{"client secret", "secret-assignment", "CLIENT_SECRET=" + fake("cs", 32, alnum), fake("cs", 32, alnum)},
		{"secret key", "secret-assignment", `SECRET_KEY = "app-insecure-` + fake("dj", 40, alnum) + `"`, "app-insecure-" + fake("dj", 40, alnum)},
		{"webhook secret", "secret-assignment", `webhookSecret: "whsec_` + fake("wh", 32, alnum) + `"`, "whsec_" + fake("wh", 32, alnum)},
		{"access token", "token-assignment", "access_token=" + fake("at", 40, alnum) + "&expires_in=3600", fake("at", 40, alnum)},
		{"auth token json", "token-assignment", `{"authToken":"` + fake("auth", 24, hexLow) + `"}`, fake("auth", 24, hexLow)},
		{"api key header", "api-key-assignment", "X-API-Key: " + fake("xapi", 32, hexLow), fake("xapi", 32, hexLow)},
		{"api key json", "api-key-assignment", `{"apiKey": "` + fake("apikey", 28, alnum) + `"}`, fake("apikey", 28, alnum)},
		{"api key yaml", "api-key-assignment", "api_key: " + fake("apiyaml", 28, alnum) + "\n", fake("apiyaml", 28, alnum)},
	}
}

// negatives are texts that hold no secret, some of them close calls.
func negatives() []string {
	img := make([]byte, 3000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	return []string{
		"", "a", "sk", "sk-", "AIza", "-----BEGIN ", "password=",
		"550e8400-e29b-41d4-a716-446655440000",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty.txt",
		`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + base64.StdEncoding.EncodeToString(img) + `"}}`,
		"iVBORw0KGgo" + base64.URLEncoding.EncodeToString(img),
		"Click the password reset link to choose a new password.",
		"Forgot your password? Passwords must have 12 characters. passwordless login",
		"Password: Please enter your password below.",
		"see task-sk-1 and risk-sk-2 in the board; disk-sk-foo",
		"sk-learn-tutorial-for-beginners-part-one-and-two-and-three",
		`{"usage":{"input_tokens":1234567,"cache_creation_input_tokens":0,"output_tokens":4096},"token_count": 123}`,
		`{"max_tokens": 4096, "stop_sequence": null, "tokens": 99999999}`,
		`{"token": 12345678, "password": null, "secret": true}`,
		"password = getpass.getpass()",
		"token = self.token",
		`api_key=os.environ["LLM_API_KEY"]`,
		"secret := os.Getenv(\"SECRET\")",
		"password: ${DB_PASSWORD}",
		"password=$DB_PASSWORD",
		"password=<<REPLACE_WITH_DB_PASSWORD>>",
		`"password": "<<REPLACE_WITH_DB_PASSWORD>>"`,
		"password=****", "password=********", "password=xxxxxxxx", "password=changeme",
		`"password": ""`, `"password": "short"`,
		`"api_key": "your-api-key-here"`, `"token": "YOUR_TOKEN"`, "APP_PASSWORD=DB_PASSWORD",
		"token: {{ .Values.token }}", `password = f"{prefix}{suffix}"`, `password = "%s" % pw`,
		"password_hash = bcrypt(pw)", `"password_hash": "abcdefghijklmnop"`,
		`"next_page_token": "abcdefgh1234"`, `{"eos_token": "</s>", "pad_token": "<pad>"}`,
		"secretName: my-tls-secret\nkind: Secret",
		"if password == 'hunter2hunter2' {",
		"the bearer token is sent in the Authorization header",
		"Authorization: Bearer ${TOKEN}", "Authorization: Bearer <token>", "Authorization: Bearer $API_TOKEN",
		"-----BEGIN PUBLIC KEY-----\n" + fake("pub", 64, b64std) + "\n-----END PUBLIC KEY-----\n",
		"-----BEGIN CERTIFICATE-----\n" + fake("cert", 64, b64std) + "\n-----END CERTIFICATE-----\n",
		"-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----",
		"from models import hf_hub_download; hf_hub_download(repo_id='x')",
		"github_pat_ prefix, ghp_ prefix, gsk_ and xai- prefixes",
		"ASIAN CUISINE; AKIA; ASIAPACIFIC_REGION",
		"AKIA" + fake("akia-long", 20, base32),
		"at 2026-01-02T10:11:12.123Z and 12:34:56; unix 1700000000:ok",
		"https://user@example.com/path https://example.com:8443/x http://[::1]:80/",
		"db://user:password@localhost:5432/db", "docs://admin:****@host",
		"MTIz is base64 of 123; NDU2. OTk5",
		"eyJhbGciOiJIUzI1NiJ9 alone, no dots",
		"-- a SQL comment --, --verbose, ---- a rule ----",
		"xoxb- and xoxp-short",
		"--password-file /run/secrets/pw --token-file=/x",
		"The token: a unit of text. Secret: nothing here.",
		"Token: &tokenValue,", "IMAGE_REL_ARM64_TOKEN = 0x000C", "token: newToken,", "api_key = key_from_env",
		`expectedToken := "expected token"`, "token := idToken{}", `t.Errorf("TestToken: -want/+got:\n%s", diff)`,
		`req.Header.Set("Authorization", "Bearer " + token)`, `url := "https://" + user + ":" + password + "@" + host`,
	}
}
