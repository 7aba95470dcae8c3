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
	var repo, env, app string
	cmd := &cobra.Command{
		Use:   "encrypt -e ENV -a APP NAME",
		Short: "Seal the value read from stdin for APP's NAME in ENV; print the string to paste",
		Long: `Encrypt reads a value from stdin (one trailing newline is dropped), seals it to the
recipients of environment ENV in the config repo and prints the string to paste into
that environment's app block: secrets = { NAME = "age:…" }. The value is bound to
APP/ENV/NAME: pasted anywhere else it does not open.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			desired, err := loadRepo(repo, env)
			if err != nil {
				return err
			}
			if _, ok := desired.Lookup(env, app); !ok {
				return fmt.Errorf("no app %q in environment %q of %s", app, env, repo)
			}
			recipients := desired.Recipients[env]
			if len(recipients) == 0 {
				return fmt.Errorf(`environment %q names no recipients: add recipients = ["age1…"] to its environment block`, env)
			}
			value, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxSecretBytes+1))
			if err != nil {
				return fmt.Errorf("read the value from stdin: %w", err)
			}
			if len(value) > maxSecretBytes {
				return fmt.Errorf("the value is longer than %d bytes", maxSecretBytes)
			}
			text := strings.TrimSuffix(strings.TrimSuffix(string(value), "\n"), "\r")
			sealed, err := secret.Seal(secret.Binding{App: app, Env: env, Name: name}, text, recipients)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sealed)
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the config repo folder")
	cmd.Flags().StringVarP(&env, "env", "e", "", "the environment (required)")
	cmd.Flags().StringVarP(&app, "app", "a", "", "the app (required)")
	_ = cmd.MarkFlagRequired("env")
	_ = cmd.MarkFlagRequired("app")
	return cmd
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
	cmd := &cobra.Command{
		Use:   "rekey -e ENV",
		Short: "Re-encrypt every secret of ENV to its current recipients, in place",
		Long: `Rekey opens every secret of environment ENV with the identity (--age-identity or
MANIFOLD_AGE_IDENTITY), checks each sits where it was sealed for, and seals it again to
the recipients the environment file names now, rewriting the sealed strings in place.
Run it after adding or removing a recipient; commit the result.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keyring, err := loadAgeIdentity(identity)
			if err != nil {
				return err
			}
			desired, err := loadRepo(repo, env)
			if err != nil {
				return err
			}
			recipients := desired.Recipients[env]
			if len(recipients) == 0 {
				return fmt.Errorf("environment %q names no recipients", env)
			}
			files := map[string]string{} // repo-relative path -> new content
			count := 0
			var errs []error
			for _, app := range desired.Apps {
				for _, name := range slices.Sorted(maps.Keys(app.Secrets)) {
					s := app.Secrets[name]
					where := secret.Binding{App: app.Name, Env: env, Name: name}
					value, err := keyring.Open(where, s.Sealed)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s:%d:%d: secret %s: %w", s.Pos.File, s.Pos.Line, s.Pos.Col, name, err))
						continue
					}
					resealed, err := secret.Seal(where, value, recipients)
					if err != nil {
						return err
					}
					content, ok := files[s.Pos.File]
					if !ok {
						data, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(s.Pos.File)))
						if err != nil {
							return err
						}
						content = string(data)
					}
					if !strings.Contains(content, s.Sealed) {
						return fmt.Errorf("%s:%d:%d: secret %s: sealed text not found as written (escaped?)", s.Pos.File, s.Pos.Line, s.Pos.Col, name)
					}
					files[s.Pos.File] = strings.Replace(content, s.Sealed, resealed, 1)
					count++
				}
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
			fmt.Fprintf(cmd.OutOrStdout(), "Rekeyed %s of %s to %s\n", plural(count, "secret"), env, plural(len(recipients), "recipient"))
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the config repo folder")
	cmd.Flags().StringVarP(&env, "env", "e", "", "the environment (required)")
	cmd.Flags().StringVar(&identity, "age-identity", os.Getenv("MANIFOLD_AGE_IDENTITY"), "the age identity file (env MANIFOLD_AGE_IDENTITY)")
	_ = cmd.MarkFlagRequired("env")
	return cmd
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
