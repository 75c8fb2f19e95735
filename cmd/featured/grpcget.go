package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/certs"
)

// grpcGet is `featured get --grpc ADDR`: the same lookup through
// featured.v1.ServingService/GetOnlineFeatures, printed as protojson (what
// grpcurl would print).
func grpcGet(ctx context.Context, conf *clientConf, addr string, useTLS bool, refs []string, service string, joinKeys []string, values [][]any) ([]byte, error) {
	creds := insecure.NewCredentials()
	if useTLS || conf.caFile != "" || strings.HasPrefix(conf.url, "https://") {
		cfg, err := certs.ClientConfig(conf.caFile)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	token, err := conf.token()
	if err != nil {
		return nil, err
	}
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("grpc %s: %w", addr, err)
	}
	defer conn.Close()
	req := &featuredv1.GetOnlineFeaturesRequest{Entities: map[string]*featuredv1.RepeatedValue{}}
	if service != "" {
		req.Kind = &featuredv1.GetOnlineFeaturesRequest_FeatureService{FeatureService: service}
	} else {
		req.Kind = &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: refs}}
	}
	for k, joinKey := range joinKeys {
		rv := &featuredv1.RepeatedValue{}
		for _, v := range values[k] {
			switch v := v.(type) {
			case int64:
				rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: v}})
			case string:
				rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: v}})
			}
		}
		req.Entities[joinKey] = rv
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := featuredv1.NewServingServiceClient(conn).GetOnlineFeatures(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("grpc GetOnlineFeatures: %w", err)
	}
	return protojson.MarshalOptions{Multiline: true}.Marshal(resp)
}
