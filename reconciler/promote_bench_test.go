package reconciler_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

// BenchmarkPromoteToServing measures a promotion on the process driver: from the
// commit that pins production to a slug staging built (already in the store) to
// production answering with that slug's content. Each round pins the other of two
// slugs, so every round is a real release: no build, the release, a rolling restart.
func BenchmarkPromoteToServing(b *testing.B) {
	env := newProcessEnv(b)
	if err := os.Remove(env.repo + "/apps/hello.hcl"); err != nil {
		b.Fatal(err)
	}
	env.write("apps/hello.hcl", `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["procfile"]
  build_config = []
  process "web" { command = "`+webCommand+`" }
}
`)
	env.write("src/hello/Procfile", "web: "+webCommand+"\n")
	env.write("src/hello-v2/Procfile", "web: "+webCommand+"\n")
	env.write("src/hello-v2/www/index.html", "v2\n")
	env.write("environments/staging.hcl", `environment "staging" {}`+"\n")
	slugs := []string{env.buildSlug("src/hello"), env.buildSlug("src/hello-v2")}
	bodies := []string{"hello\n", "v2\n"}
	pin := func(i int) {
		env.write("environments/production.hcl", fmt.Sprintf(`environment "production" {
  app "hello" {
    release {
      slug = %q
      from = "staging v%d"
    }
  }
}
`, slugs[i%2], i))
	}
	pin(0)
	env.reconcile()
	client := &http.Client{Timeout: 10 * time.Second}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		pin(i)
		env.reconcile()
		addrs := env.router.addrs("hello.production.localhost")
		if len(addrs) == 0 {
			b.Fatal("production has no backend")
		}
		resp, err := client.Get("http://" + addrs[0] + "/")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != bodies[i%2] {
			b.Fatalf("round %d: production serves %q, want %q", i, body, bodies[i%2])
		}
	}
	b.StopTimer()
}
