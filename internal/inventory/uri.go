package inventory

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// URI is a parsed target address: [transport://][user[:password]@]host[:port].
type URI struct {
	// Scheme is the transport named by the URI ("" when absent).
	Scheme string
	// User and Password come from the userinfo, percent-decoded.
	User        string
	Password    string
	HasPassword bool
	// Host has no brackets, even for IPv6 literals.
	Host string
	// Port is 0 when the URI names none.
	Port int
	// Safe is the URI as written with the password removed.
	Safe string
}

// ParseURI parses a target URI the way Bolt does: a string without
// "scheme://" is read as "//string", so "host:port" works, and IPv6 literals
// must be bracketed ("[::1]:22"). Errors never contain the password.
func ParseURI(s string) (*URI, error) {
	if s == "" {
		return nil, errors.New("uri is empty")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return nil, errors.New("uri contains whitespace or control characters")
		}
		if r > unicode.MaxASCII {
			return nil, errors.New("uri contains non-ASCII characters")
		}
	}
	u := &URI{}
	rest := s
	if i := strings.Index(s, "://"); i >= 0 && !strings.Contains(s[:i], ":") {
		u.Scheme = strings.ToLower(s[:i])
		if !validScheme(u.Scheme) {
			return nil, errors.New("uri has an invalid transport")
		}
		rest = s[i+3:]
	} else {
		rest = strings.TrimPrefix(rest, "//")
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	hostport := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		hostport = authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		u.User = unescape(user)
		if hasPass {
			u.HasPassword = true
			u.Password = unescape(pass)
		}
		safeInfo := user
		prefix := ""
		if u.Scheme != "" {
			prefix = s[:len(s)-len(rest)]
		}
		u.Safe = prefix + safeInfo + "@" + hostport + path
	} else {
		u.Safe = s
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	u.Host, u.Port = host, port
	if u.Scheme == "" && u.Host == "" {
		return nil, errors.New("uri has no host")
	}
	return u, nil
}

func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

func unescape(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}

func splitHostPort(hp string) (string, int, error) {
	host, portStr := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.Index(hp, "]")
		if end < 0 {
			return "", 0, errors.New("uri has an unclosed \"[\" in its host")
		}
		host = hp[1:end]
		after := hp[end+1:]
		if after != "" {
			if after[0] != ':' {
				return "", 0, errors.New("uri has text after \"]\" in its host")
			}
			portStr = after[1:]
		}
		if host == "" || strings.ContainsAny(host, "[]") {
			return "", 0, errors.New("uri has an invalid IPv6 host")
		}
	} else {
		switch strings.Count(hp, ":") {
		case 0:
		case 1:
			host, portStr, _ = strings.Cut(hp, ":")
		default:
			return "", 0, errors.New("uri has too many \":\" (write IPv6 addresses as [addr]:port)")
		}
		if strings.ContainsAny(host, "[]") {
			return "", 0, errors.New("uri has \"[\" or \"]\" in its host")
		}
	}
	if portStr == "" {
		return host, 0, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || portStr[0] == '+' || portStr[0] == '-' {
		return "", 0, errors.New("uri has an invalid port (want 1-65535)")
	}
	return host, port, nil
}

// Redact removes passwords from every URI-like word of s (words are split
// on whitespace and commas), for use in messages.
func Redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	start := 0
	flush := func(end int) {
		b.WriteString(redactWord(s[start:end]))
	}
	for i, r := range s {
		if unicode.IsSpace(r) || r == ',' {
			flush(i)
			b.WriteRune(r)
			start = i + len(string(r))
		}
	}
	flush(len(s))
	return b.String()
}

func redactWord(w string) string {
	at := strings.LastIndex(w, "@")
	if at < 0 {
		return w
	}
	begin := 0
	if i := strings.Index(w, "://"); i >= 0 && i < at {
		begin = i + 3
	}
	info := w[begin:at]
	if c := strings.Index(info, ":"); c >= 0 {
		return w[:begin] + info[:c] + w[at:]
	}
	return w
}
