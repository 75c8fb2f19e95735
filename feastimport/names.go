package feastimport

import (
	"fmt"
	"strings"
)

// The name rules of registry (registry/names.go), repeated here so that
// Convert lists a name featured refuses as Unmapped instead of writing a
// document that apply refuses. The tests plan every document they convert
// (plan in convert_test.go), so a drift from the registry's rules fails there.

const maxNameLen = 128

// checkName: names of entities, sources, views, features and services.
func checkName(s string) string {
	if s == "" {
		return "no name"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("name longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0) {
			return fmt.Sprintf("%q is not a featured name ([a-z_][a-z0-9_]*); renaming it would break the clients that ask for it", s)
		}
	}
	if strings.Contains(s, "__") {
		return fmt.Sprintf("%q contains \"__\", which full feature names use to join view and feature", s)
	}
	return ""
}

// checkFieldName: event fields and join keys.
func checkFieldName(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("is longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			return fmt.Sprintf("%q is not a featured field name ([A-Za-z_][A-Za-z0-9_]*)", s)
		}
	}
	return ""
}

// checkTopic: Kafka's topic rule.
func checkTopic(s string) string {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return fmt.Sprintf("%q is not a Kafka topic name", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Sprintf("%q is not a Kafka topic name", s)
		}
	}
	return ""
}
