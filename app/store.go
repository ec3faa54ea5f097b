// Package app implements the commands of the mmreplicate CLI on top of the other
// packages; cmd/mmreplicate only parses flags into the option structs found here.
package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
)

// ErrUsage marks errors that are the caller's mistake (exit status 2).
var ErrUsage = errors.New("usage")

// openStore opens the object store of one S3 target.
func openStore(ctx context.Context, t config.S3Target) (objstore.Store, error) {
	scheme, bucket, prefix, err := objstore.ParseURL(t.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: s3 target %q: %w", config.ErrInvalid, t.Name, err)
	}
	switch scheme {
	case "file":
		return file.New(prefix)
	case "s3":
		return s3store.New(ctx, s3store.Options{Bucket: bucket, Prefix: prefix, Endpoint: t.Endpoint, Region: t.Region,
			AccessKeyID: t.AccessKeyID, SecretAccessKey: t.SecretAccessKey})
	}
	return nil, fmt.Errorf("%w: s3 target %q: unsupported scheme %q", config.ErrInvalid, t.Name, scheme)
}

// openFirstAnswering opens the named target, or (name empty) the first target whose
// store answers, saying which in the returned name.
func openFirstAnswering(ctx context.Context, cfg *config.Config, name string) (objstore.Store, string, error) {
	if name != "" {
		t, err := cfg.Target(name)
		if err != nil {
			return nil, "", err
		}
		st, err := openStore(ctx, t)
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
		st, err := openStore(ctx, t)
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
