package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// Verification: before a run, one request of each target is decoded in
// full and every value compared with Value, so that a system that answers
// fast because it lost the data (NOT_FOUND, nil) is caught before it is
// measured, and "the same values" is checked, not assumed.

// checkFeast checks a Feast /get-online-features response: the join-key
// column and one column per feature, matched by name, every value PRESENT
// and equal to Value.
func checkFeast(body []byte, keys []int64, features int) error {
	var resp struct {
		Metadata struct {
			FeatureNames []string `json:"feature_names"`
		} `json:"metadata"`
		Results []struct {
			Values   []json.RawMessage `json:"values"`
			Statuses []string          `json:"statuses"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("verify: decode Feast response: %w: %.200s", err, body)
	}
	names := resp.Metadata.FeatureNames
	if len(names) != features+1 || len(resp.Results) != features+1 {
		return fmt.Errorf("verify: %d names and %d result columns, want %d", len(names), len(resp.Results), features+1)
	}
	seen := map[int]bool{}
	for c, name := range names {
		col := resp.Results[c]
		if len(col.Values) != len(keys) || len(col.Statuses) != len(keys) {
			return fmt.Errorf("verify: column %q has %d values and %d statuses, want %d", name, len(col.Values), len(col.Statuses), len(keys))
		}
		f := -1
		if name != EntityKey {
			var err error
			if f, err = featureIndex(name); err != nil || f >= features {
				return fmt.Errorf("verify: unexpected column %q", name)
			}
			if seen[f] {
				return fmt.Errorf("verify: column %q twice", name)
			}
			seen[f] = true
		}
		for r, raw := range col.Values {
			if col.Statuses[r] != "PRESENT" {
				return fmt.Errorf("verify: %s of entity %d: status %s", name, keys[r], col.Statuses[r])
			}
			want := keys[r]
			if f >= 0 {
				want = Value(keys[r], f)
			}
			if err := checkJSONInt(raw, want); err != nil {
				return fmt.Errorf("verify: %s of entity %d: %w", name, keys[r], err)
			}
		}
	}
	return nil
}

// checkNative checks featured's /v1/features response (row-major).
func checkNative(body []byte, keys []int64, features int) error {
	var resp struct {
		JoinKey  string   `json:"join_key"`
		Features []string `json:"features"`
		Rows     []struct {
			Key      json.RawMessage   `json:"key"`
			Values   []json.RawMessage `json:"values"`
			Statuses []string          `json:"statuses"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("verify: decode native response: %w: %.200s", err, body)
	}
	if resp.JoinKey != EntityKey || len(resp.Features) != features || len(resp.Rows) != len(keys) {
		return fmt.Errorf("verify: join key %q, %d features, %d rows; want %q, %d, %d",
			resp.JoinKey, len(resp.Features), len(resp.Rows), EntityKey, features, len(keys))
	}
	idx := make([]int, features)
	for c, name := range resp.Features {
		f, err := featureIndex(name)
		if err != nil || f >= features {
			return fmt.Errorf("verify: unexpected feature %q", name)
		}
		idx[c] = f
	}
	for r, row := range resp.Rows {
		if err := checkJSONInt(row.Key, keys[r]); err != nil {
			return fmt.Errorf("verify: row %d key: %w", r, err)
		}
		if len(row.Values) != features || len(row.Statuses) != features {
			return fmt.Errorf("verify: row %d has %d values, %d statuses", r, len(row.Values), len(row.Statuses))
		}
		for c, raw := range row.Values {
			if row.Statuses[c] != "PRESENT" {
				return fmt.Errorf("verify: %s of entity %d: status %s", resp.Features[c], keys[r], row.Statuses[c])
			}
			if err := checkJSONInt(raw, Value(keys[r], idx[c])); err != nil {
				return fmt.Errorf("verify: %s of entity %d: %w", resp.Features[c], keys[r], err)
			}
		}
	}
	return nil
}

// checkProto checks a featured.v1 GetOnlineFeaturesResponse.
func checkProto(resp *featuredv1.GetOnlineFeaturesResponse, keys []int64, features int) error {
	names := resp.GetMetadata().GetFeatureNames().GetVal()
	if len(names) != features+1 || len(resp.GetResults()) != features+1 {
		return fmt.Errorf("verify: %d names and %d result columns, want %d", len(names), len(resp.GetResults()), features+1)
	}
	for c, name := range names {
		col := resp.GetResults()[c]
		if len(col.GetValues()) != len(keys) || len(col.GetStatuses()) != len(keys) {
			return fmt.Errorf("verify: column %q has %d values, want %d", name, len(col.GetValues()), len(keys))
		}
		f := -1
		if name != EntityKey {
			var err error
			if f, err = featureIndex(name); err != nil || f >= features {
				return fmt.Errorf("verify: unexpected column %q", name)
			}
		}
		for r, v := range col.GetValues() {
			if st := col.GetStatuses()[r]; st != featuredv1.FieldStatus_PRESENT {
				return fmt.Errorf("verify: %s of entity %d: status %s", name, keys[r], st)
			}
			want := keys[r]
			if f >= 0 {
				want = Value(keys[r], f)
			}
			if got, ok := v.GetKind().(*featuredv1.Value_Int64Val); !ok || got.Int64Val != want {
				return fmt.Errorf("verify: %s of entity %d: got %v, want %d", name, keys[r], v, want)
			}
		}
	}
	return nil
}

// checkRedisValues checks HMGET replies: per entity, features values in
// order.
func checkRedisValues(got [][]byte, keys []int64, features int) error {
	if len(got) != len(keys)*features {
		return fmt.Errorf("verify: %d values, want %d", len(got), len(keys)*features)
	}
	for r, e := range keys {
		for f := range features {
			if err := checkDecimal(got[r*features+f], Value(e, f)); err != nil {
				return fmt.Errorf("verify: %s of entity %d: %w", FeatureName(f), e, err)
			}
		}
	}
	return nil
}

// checkRedisPairs checks HGETALL replies: per entity and view, field/value
// pairs of the view's features in any order.
func checkRedisPairs(got [][]byte, keys []int64, features int) error {
	if len(got) != 2*len(keys)*features {
		return fmt.Errorf("verify: %d strings, want %d field/value pairs", len(got), len(keys)*features)
	}
	i := 0
	for _, e := range keys {
		for v := 0; v < features/FeaturesPerView; v++ {
			seen := map[int]bool{}
			for range FeaturesPerView {
				f, err := featureIndex(string(got[i]))
				if err != nil || f/FeaturesPerView != v || seen[f] {
					return fmt.Errorf("verify: unexpected field %q in view %d of entity %d", got[i], v, e)
				}
				seen[f] = true
				if err := checkDecimal(got[i+1], Value(e, f)); err != nil {
					return fmt.Errorf("verify: %s of entity %d: %w", FeatureName(f), e, err)
				}
				i += 2
			}
		}
	}
	return nil
}

func featureIndex(name string) (int, error) {
	const prefix = "feature_"
	if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
		return 0, fmt.Errorf("not a feature name")
	}
	return strconv.Atoi(name[len(prefix):])
}

// checkJSONInt accepts 123 and "123" (protobuf's JSON mapping quotes
// int64).
func checkJSONInt(raw json.RawMessage, want int64) error {
	return checkDecimal(bytes.Trim(raw, `"`), want)
}

func checkDecimal(b []byte, want int64) error {
	got, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("value %q is not an integer", b)
	}
	if got != want {
		return fmt.Errorf("got %d, want %d", got, want)
	}
	return nil
}
