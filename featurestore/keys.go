package featurestore

import (
	"encoding/binary"
)

// Key prefixes. See docs/format.md.
const (
	prefixState  = 's'
	prefixOffset = 'o'
	prefixMeta   = 'm'
	// prefixQuarantine holds copies of states that do not decode, and
	// prefixDeadLetter the Kafka writes refused for them (damage.go).
	prefixQuarantine = 'q'
	prefixDeadLetter = 'd'
	prefixMarker     = 'b' // batch markers of pushes with a batch ID (dedupe.go)
)

// stateKeyLen is the length of a state key before the entity bytes.
const stateKeyLen = 1 + 4 + 4

func appendStateKey(dst []byte, vk ViewKey, entity []byte) []byte {
	dst = append(dst, prefixState)
	dst = binary.BigEndian.AppendUint32(dst, vk.ID)
	dst = binary.BigEndian.AppendUint32(dst, vk.Version)
	return append(dst, entity...)
}

// viewBounds returns the key range [start, end) holding every state of vk.
func viewBounds(vk ViewKey) (start, end []byte) {
	start = appendStateKey(nil, vk, nil)
	next := vk
	next.Version++
	if next.Version == 0 {
		next.ID++
	}
	end = appendStateKey(nil, next, nil)
	if vk.ID == ^uint32(0) && vk.Version == ^uint32(0) {
		end = []byte{prefixState + 1}
	}
	return start, end
}

func parseStateKey(key []byte) (vk ViewKey, entity []byte, ok bool) {
	if len(key) < stateKeyLen || key[0] != prefixState {
		return ViewKey{}, nil, false
	}
	vk.ID = binary.BigEndian.Uint32(key[1:5])
	vk.Version = binary.BigEndian.Uint32(key[5:9])
	return vk, key[stateKeyLen:], true
}

// offsetKey is 'o' | topic | 0x00 | partition (4 bytes, big-endian). Topic
// names cannot hold 0x00.
func offsetKey(topic string, partition int32) []byte {
	k := make([]byte, 0, len(topic)+6)
	k = append(k, prefixOffset)
	k = append(k, topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

func parseOffsetKey(key []byte) (topic string, partition int32, ok bool) {
	if len(key) < 6 || key[0] != prefixOffset || key[len(key)-5] != 0 {
		return "", 0, false
	}
	return string(key[1 : len(key)-5]), int32(binary.BigEndian.Uint32(key[len(key)-4:])), true
}

// prefixStaging holds a rebuild's states until its swap (rebuild.go): the
// same layout as state keys, under another prefix.
const prefixStaging = 'r'

func appendStagingKey(dst []byte, vk ViewKey, entity []byte) []byte {
	n := len(dst)
	dst = appendStateKey(dst, vk, entity)
	dst[n] = prefixStaging
	return dst
}

// stagingBounds returns the key range [start, end) of vk's staging keys.
func stagingBounds(vk ViewKey) (start, end []byte) {
	start, end = viewBounds(vk)
	start[0] = prefixStaging
	if end[0] == prefixState {
		end[0] = prefixStaging
	} else {
		end[0] = prefixStaging + 1
	}
	return start, end
}

// swapKeyPrefix | view id | version records that a rebuild's staged states
// replace the view's live states: the rebuild's commit point.
var swapKeyPrefix = []byte{prefixMeta, 's', 'w', 'a', 'p'}

func swapKey(vk ViewKey) []byte {
	k := append([]byte(nil), swapKeyPrefix...)
	k = binary.BigEndian.AppendUint32(k, vk.ID)
	return binary.BigEndian.AppendUint32(k, vk.Version)
}
