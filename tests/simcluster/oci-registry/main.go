// Command oci-registry: go-containerregistry's in-memory OCI registry behind HTTP basic auth, on loopback only, for
// the OCI chart tests. It logs one line per request (method, path, status, and whether valid credentials came),
// never the credentials themselves.
package main

import (
	"crypto/subtle"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "loopback address to serve on")
	credentials := flag.String("credentials", "", "file holding user:password (required)")
	flag.Parse()
	raw, err := os.ReadFile(*credentials)
	if err != nil {
		log.Fatalf("credentials: %v", err)
	}
	user, pass, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
	if !ok || !strings.HasPrefix(*listen, "127.") {
		log.Fatal("need user:password credentials and a 127.x listen address")
	}
	inner := registry.New(registry.Logger(log.New(os.Stderr, "", 0)))
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, given := req.BasicAuth()
		valid := given && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 &&
			subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		if !valid {
			w.Header().Set("WWW-Authenticate", `Basic realm="nimops-test-registry"`)
			rec.WriteHeader(http.StatusUnauthorized)
		} else {
			inner.ServeHTTP(rec, req)
		}
		log.Printf("request %s %s status=%d credentials=%v", req.Method, req.URL.Path, rec.status, valid)
	})
	log.Fatal(http.ListenAndServe(*listen, handler))
}
