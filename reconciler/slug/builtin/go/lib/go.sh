# lib/go.sh: what bin/download and bin/compile share. Sourced, never run.

# read_env NAME: the config var NAME from ENV_DIR (empty when unset).
read_env() { [ -f "$env_dir/$1" ] && cat "$env_dir/$1" || true; }

# heroku_directive NAME: the value of Heroku's `// +heroku NAME value...` line in
# go.mod (goVersion, install), empty when go.mod has none.
heroku_directive() {
	sed -n "s|^[[:space:]]*//[[:space:]]*+heroku[[:space:]][[:space:]]*$1[[:space:]][[:space:]]*||p" "$build_dir/go.mod" |
		tr -d '\r' | head -n 1 | sed 's/[[:space:]]*$//'
}

# need_go WHERE: fails naming what is missing when there is no go on the PATH.
need_go() {
	if ! command -v go >/dev/null 2>&1; then
		echo " !     The Go toolchain (go) is not on the PATH: $1" >&2
		exit 1
	fi
}

# check_go_version: `// +heroku goVersion goX.Y[.Z]` names the toolchain the app wants.
# manifold installs no toolchain (builds are offline): a toolchain other than the one
# asked for is an error naming both, never a silent fallback.
check_go_version() {
	want=$(heroku_directive goVersion)
	[ -n "$want" ] || return 0
	have=$(go env GOVERSION)
	case $want in go*) ;; *) want=go$want ;; esac
	case $have in
	"$want" | "$want".*) return 0 ;;
	esac
	echo " !     go.mod asks for $want (// +heroku goVersion $want), but the build's toolchain is $have." >&2
	echo " !     Install $want on the build host (or in the stack image), or change the goVersion line." >&2
	exit 1
}
