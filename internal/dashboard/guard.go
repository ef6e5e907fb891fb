package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// CookieName is the session cookie the URL's token is exchanged for.
const CookieName = "tminus_dashboard"

// CheckAddress refuses to serve on an address other machines can reach unless the user
// said --insecure-bind: the dashboard acts with the user's credentials, so anyone who
// reaches it acts as them. A host name is refused too: it may resolve anywhere.
func CheckAddress(address string, insecureBind bool) error {
	ip := net.ParseIP(address)
	if address == "localhost" || (ip != nil && ip.IsLoopback()) || insecureBind {
		return nil
	}
	return fmt.Errorf("--address %s is not a loopback address: the dashboard acts as you (your kubeconfig), so anyone who "+
		"can reach it could act as you; use 127.0.0.1 (the default) or ::1, or say --insecure-bind if you mean it", address)
}

// RandomToken is a secret for the URL or the session: 256 random bits.
func RandomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// guard lets a request through only when it is addressed to this server by a name it
// serves (DNS rebinding: a page of another site whose name now resolves to 127.0.0.1
// sends its own Host), carries the session cookie (or the URL's token, exchanged for the
// cookie), and, when it changes something, comes from a page of this server (Origin:
// cross-site request forgery). It also tells the browser never to frame the pages
// (clickjacking of the buttons), run no script but ours, and keep no copies.
type guard struct {
	hosts   map[string]bool
	token   string
	session string
	next    http.Handler
}

// allowedHosts are the Host headers the server answers to on port: the address it
// binds and the loopback names.
func allowedHosts(address string, port int, extra ...string) map[string]bool {
	p := strconv.Itoa(port)
	hosts := map[string]bool{}
	for _, h := range append([]string{address, "localhost", "127.0.0.1", "::1"}, extra...) {
		if h == "" {
			continue
		}
		hosts[strings.ToLower(net.JoinHostPort(h, p))] = true
	}
	return hosts
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends "Origin: null"
	// with the dashboard's own forms, which the Origin check below must refuse, and
	// every button would be. No Referer leaves the dashboard either way, and the
	// token has left the address by the time a page links anywhere.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if !g.hosts[strings.ToLower(r.Host)] {
		http.Error(w, fmt.Sprintf("refused: Host %q is not this dashboard's address (a DNS-rebinding page?)", r.Host), http.StatusMisdirectedRequest)
		return
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(g.token)) != 1 {
			http.Error(w, "refused: wrong token; open the URL kubectl checklist dashboard printed", http.StatusUnauthorized)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: g.session, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode})
		// Drop the token from the address bar and history at once.
		q := r.URL.Query()
		q.Del("token")
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	c, err := r.Cookie(CookieName)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(g.session)) != 1 {
		http.Error(w, "refused: no dashboard session; open the URL kubectl checklist dashboard printed (it carries a token)",
			http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		origin := r.Header.Get("Origin")
		u, err := url.Parse(origin)
		if origin == "" || err != nil || u.Scheme != "http" || !g.hosts[strings.ToLower(u.Host)] {
			http.Error(w, fmt.Sprintf("refused: a change must come from a page of this dashboard (Origin %q)", origin), http.StatusForbidden)
			return
		}
	}
	g.next.ServeHTTP(w, r)
}
