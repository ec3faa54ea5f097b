// Package app implements the commands of the mmreplicate CLI on top of the other
// packages; cmd/mmreplicate only parses flags into the option structs found here.
package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/crypt"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
)

// ErrUsage marks errors that are the caller's mistake (exit status 2).
var ErrUsage = errors.New("usage")

// openStore opens the object store of one S3 target, wrapped in client-side encryption
// when the config has an encryption section. keyDir is where the writer keeps its dedup
// key (the daemon's data_dir); readers pass "" and find keys in the store's keyring.
func openStore(ctx context.Context, cfg *config.Config, t config.S3Target, keyDir string) (objstore.Store, error) {
	scheme, bucket, prefix, err := objstore.ParseURL(t.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: s3 target %q: %w", config.ErrInvalid, t.Name, err)
	}
	var st objstore.Store
	switch scheme {
	case "file":
		st, err = file.New(prefix)
	case "s3":
		st, err = s3store.New(ctx, s3store.Options{Bucket: bucket, Prefix: prefix, Endpoint: t.Endpoint, Region: t.Region,
			AccessKeyID: t.AccessKeyID, SecretAccessKey: t.SecretAccessKey})
	default:
		return nil, fmt.Errorf("%w: s3 target %q: unsupported scheme %q", config.ErrInvalid, t.Name, scheme)
	}
	if err != nil || cfg.Encryption == nil {
		return st, err
	}
	enc, err := crypt.New(ctx, st, crypt.Options{Recipients: cfg.Encryption.Recipients,
		IdentityFile: cfg.Encryption.IdentityFile, KeyDir: keyDir})
	if err != nil {
		return nil, fmt.Errorf("%w: encryption: %w", config.ErrInvalid, err)
	}
	return enc, nil
}

// openFirstAnswering opens the named target, or (name empty) the first target whose
// store answers, saying which in the returned name.
func openFirstAnswering(ctx context.Context, cfg *config.Config, name string) (objstore.Store, string, error) {
	if name != "" {
		t, err := cfg.Target(name)
		if err != nil {
			return nil, "", err
		}
		st, err := openStore(ctx, cfg, t, "")
		if err != nil {
			return nil, "", err
		}
		if err := st.Check(ctx); err != nil {
			return nil, "", err
		}
		return st, t.Name, nil
	}
	var errs []error
	for _, t := range cfg.S3 {
		st, err := openStore(ctx, cfg, t, "")
		if err == nil {
			err = st.Check(ctx)
		}
		if err == nil {
			return st, t.Name, nil
		}
		errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
	}
	return nil, "", errors.Join(errs...)
}
