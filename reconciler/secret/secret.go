// Package secret seals and opens the secrets of a config repo: each value encrypted
// with age to its environment's recipients, inside an envelope that binds it to the
// app, environment and name it was made for, so a copy pasted elsewhere never opens.
package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// Prefix starts every sealed value, so a reader (and spec validation) can tell a
// sealed secret from a plaintext pasted by mistake.
const Prefix = "age:"

// envelopeMagic starts the plaintext that age encrypts: the binding follows, then the
// value. age authenticates the whole payload, so the binding cannot be edited either.
const envelopeMagic = "manifold-secret/v1\n"

// maxSealedBytes bounds a sealed value (a config var is small; Heroku caps all of an
// app's config at 32 kB).
const maxSealedBytes = 64 << 10

// Errors a caller decides on with errors.Is.
var (
	// ErrNoIdentity: the daemon was started without --age-identity.
	ErrNoIdentity = errors.New("no age identity: start the daemon with --age-identity FILE (or MANIFOLD_AGE_IDENTITY)")
	// ErrWrongIdentity: none of the identities is a recipient of the value (e.g.
	// staging's key and a production value).
	ErrWrongIdentity = errors.New("not encrypted to this daemon's age identity")
	// ErrMoved: the value opens but was sealed for another app, environment or name.
	ErrMoved = errors.New("sealed for another place")
	// ErrCorrupt: the value is not a sealed secret or was tampered with.
	ErrCorrupt = errors.New("not a valid sealed secret (tampered or truncated?)")
)

// Binding is where a secret belongs: app/env/NAME for a config var. A notify
// receiver's key or token is bound by NotifyBinding.
type Binding struct {
	App, Env, Name string
}

// String is "app/env/NAME", or "manifold.hcl/NAME" for a value of manifold.hcl.
func (b Binding) String() string {
	if b.App == "" && b.Env == "" {
		return "manifold.hcl/" + b.Name
	}
	return b.App + "/" + b.Env + "/" + b.Name
}

// notifyName starts the Name of a notify receiver's binding. Config var names never
// hold a "/", so no config var's value opens as a receiver's credential, nor the
// other way round.
const notifyName = "notify/"

// NotifyBinding is where a notify receiver's sealed secret or token (attr) belongs:
// app/env/notify/RECEIVER/ATTR for an app's receiver in an environment, and
// manifold.hcl's (app and env empty) for a receiver of manifold.hcl. A value sealed
// for one receiver, attribute, app or environment opens nowhere else.
func NotifyBinding(app, env, receiver, attr string) Binding {
	return Binding{App: app, Env: env, Name: notifyName + receiver + "/" + attr}
}

// encryptCommand is the command that seals a value for b.
func (b Binding) encryptCommand() string {
	place := ""
	if b.App != "" || b.Env != "" {
		place = fmt.Sprintf(" -e %s -a %s", b.Env, b.App)
	}
	if rest, ok := strings.CutPrefix(b.Name, notifyName); ok {
		if i := strings.LastIndex(rest, "/"); i > 0 {
			return fmt.Sprintf("manifold secret encrypt%s --notify %s %s", place, rest[:i], rest[i+1:])
		}
	}
	return fmt.Sprintf("manifold secret encrypt%s %s", place, b.Name)
}

func (b Binding) header() string {
	return envelopeMagic + b.App + "\n" + b.Env + "\n" + b.Name + "\n"
}

// Seal encrypts value for where to the recipients ("age1…" public keys, or any
// recipient age.ParseRecipients reads) and returns the string to paste into the
// environment's secrets map: Prefix and the unpadded base64url of the age file.
func Seal(where Binding, value string, recipients []string) (string, error) {
	if len(recipients) == 0 {
		return "", fmt.Errorf("seal %s: environment %q has no recipients", where, where.Env)
	}
	parsed, err := ParseRecipients(recipients)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", where, err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, parsed...)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", where, err)
	}
	if _, err := io.WriteString(w, where.header()+value); err != nil {
		return "", fmt.Errorf("seal %s: %w", where, err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("seal %s: %w", where, err)
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(out.Bytes()), nil
}

// ParseRecipients parses public keys, one per element.
func ParseRecipients(recipients []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, r := range recipients {
		if strings.ContainsAny(r, "\n#") {
			return nil, fmt.Errorf("invalid recipient %q", r)
		}
		parsed, err := age.ParseRecipients(strings.NewReader(r))
		if err != nil {
			return nil, fmt.Errorf("invalid recipient %q: %w", r, err)
		}
		out = append(out, parsed...)
	}
	return out, nil
}

// CheckFormat tells whether sealed looks like a sealed value (without opening it).
func CheckFormat(sealed string) error {
	_, err := decode(sealed)
	return err
}

func decode(sealed string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: want %q followed by what `manifold secret encrypt` prints", ErrCorrupt, Prefix)
	}
	if len(rest) > maxSealedBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrCorrupt, maxSealedBytes)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return raw, nil
}

// Keyring holds the identities (private keys) a daemon opens secrets with. The zero
// Keyring, or a nil one, has none: every Open fails with ErrNoIdentity. Safe for
// concurrent use.
type Keyring struct {
	identities []age.Identity
}

// ParseKeyring reads identities in age-keygen's format: one AGE-SECRET-KEY-1… per
// line, # comments and blank lines ignored (what `manifold secret keygen` and
// Debian's age-keygen write).
func ParseKeyring(r io.Reader) (*Keyring, error) {
	ids, err := age.ParseIdentities(r)
	if err != nil {
		return nil, err
	}
	return &Keyring{identities: ids}, nil
}

// LoadKeyring reads an identity file. It refuses a file others can read, as ssh does
// with private keys.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("age identity: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("age identity %s: mode %04o lets others read it: chmod 600 it", path, info.Mode().Perm())
	}
	k, err := ParseKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("age identity %s: %w", path, err)
	}
	return k, nil
}

// Open decrypts sealed and checks that it was sealed for where. Errors wrap
// ErrNoIdentity, ErrWrongIdentity, ErrCorrupt or ErrMoved (naming where it was
// sealed for).
func (k *Keyring) Open(where Binding, sealed string) (string, error) {
	raw, err := decode(sealed)
	if err != nil {
		return "", err
	}
	if k == nil || len(k.identities) == 0 {
		return "", ErrNoIdentity
	}
	r, err := age.Decrypt(bytes.NewReader(raw), k.identities...)
	var noMatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &noMatch):
		return "", ErrWrongIdentity
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxSealedBytes))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	text := string(plain)
	if value, ok := strings.CutPrefix(text, where.header()); ok {
		return value, nil
	}
	if rest, ok := strings.CutPrefix(text, envelopeMagic); ok {
		parts := strings.SplitN(rest, "\n", 4)
		if len(parts) == 4 {
			was := Binding{App: parts[0], Env: parts[1], Name: parts[2]}
			return "", fmt.Errorf("%w: encrypted for %s, found at %s (run `%s` for this place)",
				ErrMoved, was, where, where.encryptCommand())
		}
	}
	return "", fmt.Errorf("%w: no manifold envelope (encrypted with plain age? use `manifold secret encrypt`)", ErrCorrupt)
}

// Generate makes a new X25519 identity and returns the identity file's text (as
// age-keygen writes it) and its public key.
func Generate() (file, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", err
	}
	recipient = id.Recipient().String()
	file = "# public key: " + recipient + "\n" + id.String() + "\n"
	return file, recipient, nil
}
