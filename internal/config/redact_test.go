package config

import (
	"strings"
	"testing"
)

// Every form a NATS_URL or memory API endpoint takes shows no secret: each
// secret below holds "S3CR", which no output may.
func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"no secret", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"no secret, no scheme", "127.0.0.1:4222", "127.0.0.1:4222"},
		{"password", "nats://alice:S3CR-pw@127.0.0.1:4222", "nats://alice:[redacted]@127.0.0.1:4222"},
		{"empty password", "nats://alice:@127.0.0.1:4222", "nats://alice:[redacted]@127.0.0.1:4222"},
		{"token as user", "nats://S3CR-tok@127.0.0.1:4222", "nats://[redacted]@127.0.0.1:4222"},
		{"IPv6 host", "nats://alice:S3CR-pw@[::1]:4222", "nats://alice:[redacted]@[::1]:4222"},
		{"https endpoint", "https://bob:S3CR-pw@mem.example:9595/api", "https://bob:[redacted]@mem.example:9595/api"},
		{"password with @", "http://u:p@S3CR@host:1", "http://u:[redacted]@host:1"},
		{"list", "nats://a:S3CR-1@h1:4222,nats://S3CR-2@h2:4223,nats://h3:4224",
			"nats://a:[redacted]@h1:4222,nats://[redacted]@h2:4223,nats://h3:4224"},
		{"list with spaces", "nats://a:S3CR@h1:4222, nats://h2:4222", "nats://a:[redacted]@h1:4222,nats://h2:4222"},

		// What does not parse loses everything between // and the last @.
		{"bad escape", "nats://u:p%zzS3CR@h:4222", "nats://[redacted]@h:4222"},
		{"password with space", "nats://u:S3CR pw@h:4222", "nats://[redacted]@h:4222"},
		{"password with /", "http://u:se/S3CR@host", "http://[redacted]@host"},
		{"password with / and a number", "http://user:12/S3CR@host", "http://[redacted]@host"},
		{"password with ?", "http://u:12?S3CR@host", "http://[redacted]@host"},
		{"password with #", "http://u:12#S3CR@host", "http://[redacted]@host"},
		{"no scheme", "u:S3CR@h:4222", "[redacted]@h:4222"},
		{"no scheme, token", "S3CR@h:4222", "[redacted]@h:4222"},
		{"bad host", "nats://u:S3CR@[::1", "nats://[redacted]@[::1"},
		{"password with comma", "nats://u:pa,S3CR@h:4222", "nats://[redacted]@h:4222"},
		{"one bad entry of a list", "nats://a:S3CR@h1:4222,nats://b:p%zzS3CR@h2:4222", "nats://[redacted]@h2:4222"},

		// Query parameters whose names look secret.
		{"token", "https://mem.example/?token=S3CR&page=2", "https://mem.example/?token=[redacted]&page=2"},
		{"every secret name", "https://h/p?access_token=S3CR&api_key=S3CR&apikey=S3CR&key=S3CR&password=S3CR&pass=S3CR&secret=S3CR&signature=S3CR&sig=S3CR&auth=S3CR",
			"https://h/p?access_token=[redacted]&api_key=[redacted]&apikey=[redacted]&key=[redacted]&password=[redacted]&pass=[redacted]&secret=[redacted]&signature=[redacted]&sig=[redacted]&auth=[redacted]"},
		{"any case", "https://h/?TOKEN=S3CR&Api_Key=S3CR&accessToken=S3CR", "https://h/?TOKEN=[redacted]&Api_Key=[redacted]&accessToken=[redacted]"},
		{"longer names", "https://h/?X-Amz-Signature=S3CR&client_secret=S3CR&x-api-key=S3CR", "https://h/?X-Amz-Signature=[redacted]&client_secret=[redacted]&x-api-key=[redacted]"},
		{"escaped name", "https://h/?api%5Fkey=S3CR", "https://h/?api%5Fkey=[redacted]"},
		{"value with comma", "https://h/?token=S3CR,more", "https://h/?token=[redacted]"},
		{"fragment", "https://h/p?sig=S3CR#top", "https://h/p?sig=[redacted]#top"},
		{"plain parameters stay", "https://h/p?tenant=acme&page=2&limit=10", "https://h/p?tenant=acme&page=2&limit=10"},
		{"password and token", "https://u:S3CR@h/?token=S3CR", "https://u:[redacted]@h/?token=[redacted]"},
		{"query in a list", "nats://h1:4222?token=S3CR,nats://h2:4222", "nats://h1:4222?token=[redacted],nats://h2:4222"},
		{"query of a URL that does not parse", "http://u:p%zzS3CR@h/?api_key=S3CR,more&x=1", "http://[redacted]@h/?api_key=[redacted]&x=1"},
		{"query after a bad entry", "nats://u:p%zz@h1,nats://h2?token=S3CR", "nats://[redacted]@h1,nats://h2?token=[redacted]"},
		{"query of a bad host", "http://h:port/?token=S3CR", "http://h:port/?token=[redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RedactURL(tc.in)
			if got != tc.want {
				t.Errorf("RedactURL(%q) = %q; want %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, "S3CR") {
				t.Errorf("RedactURL(%q) shows a secret: %q", tc.in, got)
			}
		})
	}
}

func TestSecretParam(t *testing.T) {
	for name, want := range map[string]bool{
		"token": true, "access_token": true, "api_key": true, "apikey": true, "key": true,
		"password": true, "pass": true, "secret": true, "signature": true, "sig": true, "auth": true,
		"AUTH": true, "Refresh-Token": true, "sas.sig": true, "X-Amz-Credential": true,
		"page": false, "limit": false, "tenant": false, "namespace": false, "": false,
	} {
		if got := SecretParam(name); got != want {
			t.Errorf("SecretParam(%q) = %v; want %v", name, got, want)
		}
	}
}
