package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// grpcGet is `featured get --grpc ADDR`: the same lookup through
// featured.v1.ServingService/GetOnlineFeatures, printed as protojson (what
// grpcurl would print).
func grpcGet(ctx context.Context, addr string, refs []string, service, joinKey string, values []any) ([]byte, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	rv := &featuredv1.RepeatedValue{}
	for _, v := range values {
		switch v := v.(type) {
		case int64:
			rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: v}})
		case string:
			rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: v}})
		}
	}
	req.Entities[joinKey] = rv
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := featuredv1.NewServingServiceClient(conn).GetOnlineFeatures(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("grpc GetOnlineFeatures: %w", err)
	}
	return protojson.MarshalOptions{Multiline: true}.Marshal(resp)
}
