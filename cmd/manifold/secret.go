package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// maxSecretBytes bounds a value read from stdin (Heroku caps an app's config at 32 kB).
const maxSecretBytes = 32 << 10

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Seal config vars for the config repo with age: encrypt, keygen, rekey",
		Long: `Secrets are config vars kept encrypted in the config repo, per environment: the
environment file names its age recipients, an app block of it holds the sealed values,
and only the daemon (with --age-identity) opens them, when it starts a dyno.`,
	}
	cmd.AddCommand(newSecretEncryptCmd(), newSecretKeygenCmd(), newSecretRekeyCmd())
	return cmd
}

func newSecretEncryptCmd() *cobra.Command {
	var repo, env, app, receiver string
	cmd := &cobra.Command{
		Use:   "encrypt -e ENV -a APP NAME | encrypt [-e ENV -a APP] --notify RECEIVER secret|token",
		Short: "Seal the value read from stdin for APP's NAME in ENV, or for a notify receiver; print the string to paste",
		Long: `Encrypt reads a value from stdin (one trailing newline is dropped), seals it to the
recipients of environment ENV in the config repo and prints the string to paste into
that environment's app block: secrets = { NAME = "age:…" }. The value is bound to
APP/ENV/NAME: pasted anywhere else it does not open.

With --notify RECEIVER, it seals a notify receiver's webhook key (secret) or forge
token (token): for APP's receiver in ENV (paste it as secret = "age:…" in that
environment's app block, notify "RECEIVER" { … }), or, without -e and -a, for a
receiver of manifold.hcl, sealed to manifold.hcl's recipients. It is bound to that
receiver, attribute and place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			where, recipients, err := sealingFor(repo, env, app, receiver, name)
			if err != nil {
				return err
			}
			value, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxSecretBytes+1))
			if err != nil {
				return fmt.Errorf("read the value from stdin: %w", err)
			}
			if len(value) > maxSecretBytes {
				return fmt.Errorf("the value is longer than %d bytes", maxSecretBytes)
			}
			text := strings.TrimSuffix(strings.TrimSuffix(string(value), "\n"), "\r")
			sealed, err := secret.Seal(where, text, recipients)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sealed)
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the config repo folder")
	cmd.Flags().StringVarP(&env, "env", "e", "", "the environment (required but for a receiver of manifold.hcl)")
	cmd.Flags().StringVarP(&app, "app", "a", "", "the app (required but for a receiver of manifold.hcl)")
	cmd.Flags().StringVar(&receiver, "notify", "", "seal the key (secret) or token (token) of this notify receiver")
	return cmd
}

// sealingFor checks that the place to seal for exists in the config repo and
// returns its binding and recipients.
func sealingFor(repo, env, app, receiver, name string) (secret.Binding, []string, error) {
	if receiver != "" && name != "secret" && name != "token" {
		return secret.Binding{}, nil, fmt.Errorf("with --notify, NAME is secret (a webhook's key) or token (a forge's), not %q", name)
	}
	if (env == "") != (app == "") || (receiver == "" && env == "") {
		if receiver == "" {
			return secret.Binding{}, nil, errors.New(`give the environment and the app: -e ENV -a APP`)
		}
		return secret.Binding{}, nil, errors.New(`give both -e ENV and -a APP (an app's receiver), or neither (a receiver of manifold.hcl)`)
	}
	desired, err := loadRepo(repo, env)
	if err != nil {
		return secret.Binding{}, nil, err
	}
	if env == "" { // a receiver of manifold.hcl
		if !slices.ContainsFunc(desired.Platform.Notify, func(n spec.Notify) bool { return n.Name == receiver }) {
			return secret.Binding{}, nil, fmt.Errorf("no notify %q in the manifold file of %s", receiver, repo)
		}
		if len(desired.Platform.Recipients) == 0 {
			return secret.Binding{}, nil, errors.New(`manifold.hcl names no recipients: add recipients = ["age1…"] (the public keys of the daemons that send its notifications)`)
		}
		return secret.NotifyBinding("", "", receiver, name), desired.Platform.Recipients, nil
	}
	found, ok := desired.Lookup(env, app)
	if !ok {
		return secret.Binding{}, nil, fmt.Errorf("no app %q in environment %q of %s", app, env, repo)
	}
	recipients := desired.Recipients[env]
	if len(recipients) == 0 {
		return secret.Binding{}, nil, fmt.Errorf(`environment %q names no recipients: add recipients = ["age1…"] to its environment block`, env)
	}
	if receiver == "" {
		return secret.Binding{App: app, Env: env, Name: name}, recipients, nil
	}
	if !slices.ContainsFunc(found.Notify, func(n spec.Notify) bool { return n.Name == receiver }) {
		return secret.Binding{}, nil, fmt.Errorf("app %q has no notify %q in environment %q of %s", app, receiver, env, repo)
	}
	return secret.NotifyBinding(app, env, receiver, name), recipients, nil
}

func newSecretKeygenCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "keygen [-o FILE]",
		Short: "Make an age identity for the daemon (as age-keygen does); print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, recipient, err := secret.Generate()
			if err != nil {
				return err
			}
			if output == "" {
				fmt.Fprint(cmd.OutOrStdout(), file)
			} else {
				f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("keygen: %w", err)
				}
				if _, err := io.WriteString(f, file); err != nil {
					f.Close()
					return fmt.Errorf("keygen: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("keygen: %w", err)
				}
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Public key: "+recipient)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the identity to FILE (mode 0600, never overwritten) instead of stdout")
	return cmd
}

func newSecretRekeyCmd() *cobra.Command {
	var repo, env, identity string
	var platform bool
	cmd := &cobra.Command{
		Use:   "rekey -e ENV | rekey --platform",
		Short: "Re-encrypt every sealed value of ENV (or of manifold.hcl) to its current recipients, in place",
		Long: `Rekey opens every sealed value of environment ENV (its apps' secrets and notify
keys and tokens), or with --platform those of manifold.hcl's notify blocks, with the
identity (--age-identity or MANIFOLD_AGE_IDENTITY), checks each sits where it was
sealed for, and seals it again to the recipients the file names now, rewriting the
sealed strings in place. Run it after adding or removing a recipient; commit the result.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (env == "") == !platform {
				return errors.New("give -e ENV (an environment's values) or --platform (manifold.hcl's)")
			}
			keyring, err := loadAgeIdentity(identity)
			if err != nil {
				return err
			}
			desired, err := loadRepo(repo, env)
			if err != nil {
				return err
			}
			place, recipients, values := env, desired.Recipients[env], sealedValuesOf(desired, env)
			if platform {
				place, recipients = "manifold.hcl", desired.Platform.Recipients
			}
			if len(recipients) == 0 {
				return fmt.Errorf("%s names no recipients", place)
			}
			files := map[string]string{} // repo-relative path -> new content
			var errs []error
			for _, v := range values {
				at := fmt.Sprintf("%s:%d:%d: %s", v.Pos.File, v.Pos.Line, v.Pos.Col, v.what)
				value, err := keyring.Open(v.where, v.Sealed)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", at, err))
					continue
				}
				resealed, err := secret.Seal(v.where, value, recipients)
				if err != nil {
					return err
				}
				content, ok := files[v.Pos.File]
				if !ok {
					data, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(v.Pos.File)))
					if err != nil {
						return err
					}
					content = string(data)
				}
				if !strings.Contains(content, v.Sealed) {
					return fmt.Errorf("%s: sealed text not found as written (escaped?)", at)
				}
				files[v.Pos.File] = strings.Replace(content, v.Sealed, resealed, 1)
			}
			if len(errs) > 0 {
				return fmt.Errorf("nothing rewritten:\n%w", errors.Join(errs...))
			}
			for _, file := range slices.Sorted(maps.Keys(files)) {
				path := filepath.Join(repo, filepath.FromSlash(file))
				info, err := os.Stat(path)
				if err != nil {
					return err
				}
				if err := os.WriteFile(path, []byte(files[file]), info.Mode().Perm()); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Rekeyed %s of %s to %s\n", plural(len(values), "secret"), place, plural(len(recipients), "recipient"))
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the config repo folder")
	cmd.Flags().StringVarP(&env, "env", "e", "", "the environment")
	cmd.Flags().BoolVar(&platform, "platform", false, "rekey manifold.hcl's sealed values (its notify blocks') instead of an environment's")
	cmd.Flags().StringVar(&identity, "age-identity", os.Getenv("MANIFOLD_AGE_IDENTITY"), "the age identity file (env MANIFOLD_AGE_IDENTITY)")
	return cmd
}

// sealedValue is one sealed value of the config repo, with where it belongs.
type sealedValue struct {
	spec.Secret
	where secret.Binding
	what  string // "secret NAME", `notify "ops" secret`
}

// sealedValuesOf lists the sealed values of environment env (its apps' secrets and
// notify keys, by app then name), or of manifold.hcl's notify blocks when env is
// empty.
func sealedValuesOf(desired *spec.Desired, env string) []sealedValue {
	var out []sealedValue
	notifies := func(app string, list []spec.Notify) {
		for _, n := range list {
			for _, c := range []struct {
				s    *spec.Secret
				attr string
			}{{n.Secret, "secret"}, {n.Token, "token"}} {
				if c.s != nil {
					out = append(out, sealedValue{Secret: *c.s, where: secret.NotifyBinding(app, env, n.Name, c.attr),
						what: fmt.Sprintf("notify %q %s", n.Name, c.attr)})
				}
			}
		}
	}
	if env == "" {
		notifies("", desired.Platform.Notify)
		return out
	}
	for _, app := range desired.Apps {
		if app.Env != env {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(app.Secrets)) {
			out = append(out, sealedValue{Secret: app.Secrets[name], where: secret.Binding{App: app.Name, Env: env, Name: name},
				what: "secret " + name})
		}
		notifies(app.Name, app.Notify)
	}
	return out
}

// loadRepo loads one environment of the config repo folder, or says every problem.
func loadRepo(repo, env string) (*spec.Desired, error) {
	if info, err := os.Stat(repo); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("--repo %s is not a folder", repo)
	}
	desired, diags := spec.Load(os.DirFS(repo), spec.LoadOptions{Env: env})
	if len(diags) > 0 {
		return nil, fmt.Errorf("the config repo does not load:\n%w", diags)
	}
	return desired, nil
}

// loadAgeIdentity reads the daemon's identity file; no file is a nil keyring, which
// opens nothing (apps with secrets stall saying so).
func loadAgeIdentity(path string) (*secret.Keyring, error) {
	if path == "" {
		return nil, nil
	}
	return secret.LoadKeyring(path)
}
