// Package spec loads a config repo (apps, environments, platform settings, in HCL or
// YAML) and the Procfiles of the apps' sources into plain, validated desired state.
// It is pure: it reads an fs.FS and returns values and file:line:col diagnostics.
package spec

// Pos is a place in a file of the config repo, for diagnostics. File is relative to
// the config repo's root, with forward slashes. Line and Col count from 1.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// Platform holds the settings of manifold.hcl|yaml.
type Platform struct {
	// DomainSuffix makes each app reachable at <app>.<env>.<suffix>. Default "localhost".
	DomainSuffix string `json:"domain_suffix"`
	// DefaultSize is the dyno size of a process that names none. Default "standard-1x".
	DefaultSize string `json:"default_size"`
	// DefaultStack is the stack of an app that names none. Default "manifold-24".
	DefaultStack string `json:"default_stack"`
	// BuildEnv (build_env) sets where builds download Go modules from: GOPROXY,
	// GOSUMDB, GONOSUMDB, GOPRIVATE, GONOPROXY, GOINSECURE and GOFLAGS
	// (BuildEnvNames), over the daemon's own `go env`. They reach only the build's
	// download step, which runs on the build host with the network; the compile step
	// stays offline. Platform settings, not app config: they never change a slug key.
	// Checksums are verified against go.sum whatever the proxy.
	BuildEnv map[string]string `json:"build_env,omitempty"`
	// KeepReleases (keep_releases) is how many of each app and environment's newest
	// releases keep their slugs for rollback, 1 to 10000. `manifold gc` collects the
	// other slugs (never one a running dyno or a pinned release uses), their Docker
	// volumes, the build caches of apps gone from the spec and stale checkouts.
	// Default 20.
	KeepReleases int `json:"keep_releases"`
	// Notify are the receivers of every event of the daemon (notify blocks of
	// manifold.hcl), sorted by Name.
	Notify []Notify `json:"notify,omitempty"`
	// Recipients are the age public keys manifold.hcl's sealed values (its notify
	// blocks' secret and token) are sealed to: those of every daemon that sends its
	// notifications. Nil when it names none.
	Recipients []string `json:"recipients,omitempty"`
	// RouterErrors (`router_errors { threshold = 10  window = "1m" }`) is when an
	// app's router errors fire router.errors.
	RouterErrors RouterErrors `json:"router_errors"`
	// Review, from `review { … }`, makes review environments of the config repo's
	// refs; nil without the block.
	Review *Review `json:"review,omitempty"`
}

// BuildEnvNames are the names build_env accepts: the go tool's settings of where
// modules come from and how they are checked.
func BuildEnvNames() []string {
	return []string{"GOFLAGS", "GOINSECURE", "GONOPROXY", "GONOSUMDB", "GOPRIVATE", "GOPROXY", "GOSUMDB"}
}

// Review says which refs of the config repo become review environments (pr-7,
// review-login-form) and for how long.
type Review struct {
	// Refs are patterns of full ref names ("refs/pull/*/head"); * does not cross /.
	Refs []string `json:"refs,omitempty"`
	// Branches are patterns of branch names ("review/*"), that is of refs/heads/….
	Branches []string `json:"branches,omitempty"`
	// TTLSeconds destroys a review environment that has had no push for that long;
	// 0 keeps it while its ref exists.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	// Max bounds the review environments at once (default 5); the rest wait.
	Max int `json:"max"`
	// Postdeploy maps an app to a command run once in each review environment, as a
	// one-off dyno, after its first successful release (Heroku's postdeploy script).
	Postdeploy map[string]string `json:"postdeploy,omitempty"`
	// Predestroy maps an app to a command run as a one-off dyno before a review
	// environment is torn down (Heroku's pr-predestroy).
	Predestroy map[string]string `json:"predestroy,omitempty"`
}

// Source says where an app's code comes from: a folder of the config repo (Path) or a
// git repository (Git and Ref).
type Source struct {
	// Path is the source folder relative to the config repo's root (cleaned, forward
	// slashes), resolved from the spec's path, which is relative to the spec file.
	Path string `json:"path,omitempty"`
	// Git is the URL of a git repository holding the source; Ref its branch, tag or commit.
	// With a Path, Ref (optional, e.g. pinned by an environment) names the revision of
	// the config repo whose copy of the folder to build; Load records it as written and
	// takes Digest from the tree it was given.
	Git string `json:"git,omitempty"`
	Ref string `json:"ref,omitempty"`
	// Digest identifies the content of a Path source: "sha256:<hex>" over the folder's
	// files (names, modes, contents). Two trees with the same Digest build the same slug.
	// Empty for Git sources until the reconciler resolves the ref ("git:<commit>"),
	// but for a review app's, which the listing of its source's refs sets.
	Digest string `json:"digest,omitempty"`
}

// Process is one process type of an app's formation.
type Process struct {
	// Type is the Procfile name: web, worker, clock, …
	Type string `json:"type"`
	// Command runs the process through /bin/sh -c. From the Procfile unless the spec sets
	// it. Empty for a Git source whose spec does not set it: its Procfile is only known
	// once the reconciler has fetched the ref.
	Command string `json:"command"`
	// Count is the number of dynos, 0 to 10000. Without a count (the spec does not name
	// the type, or names it without one) a type runs 0, but web, which runs 1 (Heroku's
	// first-deploy default).
	Count int `json:"count"`
	// Size is one of Sizes' names; the platform's default size when left out.
	Size string `json:"size"`
	// HealthCheck is an HTTP path a web dyno must answer with 2xx before it takes traffic.
	HealthCheck string `json:"health_check,omitempty"`
	// StopTimeoutSeconds is the grace between SIGTERM and SIGKILL, 1 to 3600 (spec
	// attribute stop_timeout). Default 30.
	StopTimeoutSeconds int `json:"stop_timeout_seconds"`
}

// Drain forwards an app's log stream. URL schemes: syslog+tcp, syslog+tls (both with a
// port), https.
type Drain struct {
	// Name is the drain block's label; an environment's drain of the same name
	// replaces the fields it sets.
	Name string `json:"name"`
	URL  string `json:"url"`
	// CA is a PEM file (relative to the config repo's root) of private CAs to trust for
	// syslog+tls and https drains. Empty means the system roots.
	CA string `json:"ca,omitempty"`
	// CADigest is "sha256:<hex>" of the CA file's content, so that a new CA in the
	// same file is a change the plan shows (the drain reconnects with it).
	CADigest string `json:"ca_digest,omitempty"`
}

// App is one app in one environment, with the environment's overrides applied.
type App struct {
	Name string `json:"name"`
	Env  string `json:"env"`
	// Pos is where the app is declared (its base spec).
	Pos    Pos    `json:"pos"`
	Source Source `json:"source"`
	// Buildpacks are the buildpacks in order; nil means detect them.
	Buildpacks []string `json:"buildpacks,omitempty"`
	// Stack is the base image the slug runs on; the platform's default stack when left out.
	Stack string `json:"stack"`
	// Config holds the config vars (names [A-Za-z_][A-Za-z0-9_]*), nil when there are
	// none. An environment's config merges over the base key by key, and a null value
	// there removes the key; numbers and bools become their text.
	Config map[string]string `json:"config,omitempty"`
	// Sensitive names config keys whose values are never printed, sorted; the base's
	// and the environment's together.
	Sensitive []string `json:"sensitive,omitempty"`
	// Domains are every host the app answers: <app>.<env>.<suffix> first, then the
	// spec's domains.
	Domains []string `json:"domains"`
	// Processes are sorted by Type, never nil. The release process type is not among
	// them; neither is a type the spec names that has no command to run and count 0.
	Processes []Process `json:"processes"`
	// ReleaseCommand is the Procfile's release: command, run before a release goes live.
	ReleaseCommand string `json:"release_command,omitempty"`
	// Drains are sorted by Name.
	Drains []Drain `json:"drains,omitempty"`
	// Suspend stops reconciling the app: what runs keeps running as it is.
	Suspend bool `json:"suspend,omitempty"`
	// Review (`review = true`, on an app whose source is git) makes review
	// environments of the refs of the app's own source repository that the review
	// block matches: one per ref, named <app>--<name from the ref> (hello--pr-7),
	// running this app only. The value the app has in the review environment (its
	// base spec with environments/review.hcl over it) is the one read; it changes
	// nothing in the environment itself.
	Review bool `json:"review,omitempty"`
	// Secrets are the environment's sealed config vars (names as Config's), set only
	// in an environment's app block: each value is age-encrypted to the environment's
	// recipients and bound to app/env/NAME (`manifold secret encrypt`). The daemon
	// opens them when it starts a dyno; nothing else ever holds the plaintext. A name
	// in both Config and Secrets is the secret.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// Notify are the receivers of this app's events (its notify blocks, an
	// environment's merged over the base's by name), sorted by Name.
	Notify []Notify `json:"notify,omitempty"`
	// BuildConfig names the config vars that reach the buildpacks (their ENV_DIR)
	// and so may be baked into the slug, sorted; nil when the spec does not set
	// build_config, and then every config var reaches them (Heroku's way). A
	// promotion is refused when these values differ between the two environments.
	BuildConfig []string `json:"build_config,omitempty"`
	// Pin, set by an environment's `release { slug, from }`, runs that slug (built
	// and run by another environment) without a build, with this environment's config.
	Pin *ReleasePin `json:"pin,omitempty"`
	// SoakSeconds is the environment's soak (`soak = "30m"`): how long a release
	// must have been healthy in the environment it comes from before `manifold
	// promote` pins it into this one. 0 (the default): no wait.
	SoakSeconds int64 `json:"soak_seconds,omitempty"`
}

// Secret is one sealed config var as written in the config repo.
type Secret struct {
	// Sealed is the value to open: "age:" and the base64url of an age file.
	Sealed string `json:"sealed"`
	// Pos is where the value is written, for errors when it does not open.
	Pos Pos `json:"pos"`
	// Env is the environment it is sealed for (bound into the ciphertext): the one
	// whose file holds it. A review environment (pr-7) runs the secrets of
	// environments/review.hcl, sealed for "review".
	Env string `json:"env,omitempty"`
}

// Desired is the whole config repo, resolved for every environment.
type Desired struct {
	Platform Platform `json:"platform"`
	// Environments are the environments' names, sorted. A repo with no environments/
	// folder has one environment, "default".
	Environments []string `json:"environments"`
	// Apps holds one App per environment and app, sorted by Env then Name.
	Apps []App `json:"apps"`
	// Recipients are the age public keys of each environment that names some
	// (environment "production" { recipients = ["age1…"] }) and has an app: its
	// secrets are sealed to them.
	Recipients map[string][]string `json:"recipients,omitempty"`
}

// Size is a dyno size, Heroku's names and memory limits.
type Size struct {
	Name        string `json:"name"`
	MemoryBytes int64  `json:"memory_bytes"`
	// CPUShares is the relative CPU weight (Docker's cpu-shares), 1024 for standard-1x.
	CPUShares int64 `json:"cpu_shares"`
}

const mib = 1 << 20

// LookupSize returns the dyno size of that name (basic, standard-1x, standard-2x,
// performance-m, performance-l) and whether it exists.
func LookupSize(name string) (Size, bool) {
	switch name {
	case "basic":
		return Size{Name: name, MemoryBytes: 512 * mib, CPUShares: 1024}, true
	case "standard-1x":
		return Size{Name: name, MemoryBytes: 512 * mib, CPUShares: 1024}, true
	case "standard-2x":
		return Size{Name: name, MemoryBytes: 1024 * mib, CPUShares: 2048}, true
	case "performance-m":
		return Size{Name: name, MemoryBytes: 2560 * mib, CPUShares: 4096}, true
	case "performance-l":
		return Size{Name: name, MemoryBytes: 14336 * mib, CPUShares: 8192}, true
	}
	return Size{}, false
}
