package serving

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/featured-dev/featured/featurestore"
)

// TestJournaledPushStatus: a push the store journaled but could not commit
// on every shard answers 503 / UNAVAILABLE, even when the client's context
// ended meanwhile: the push will be applied and the client must retry with
// its batch_id, not give up on it or resend it under a new one.
func TestJournaledPushStatus(t *testing.T) {
	for _, cause := range []error{errors.New("shard 1: commit: no space left on device"), context.Canceled, context.DeadlineExceeded} {
		err := fmt.Errorf("ingest: push to %q: %w", "tx", &featurestore.JournaledError{ID: "b", Err: cause})
		if st, code := httpStatus(err), grpcCode(err); st != http.StatusServiceUnavailable || code != codes.Unavailable {
			t.Errorf("%v: %d / %v, want 503 / Unavailable", err, st, code)
		}
	}
}
