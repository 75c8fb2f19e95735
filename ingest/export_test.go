package ingest

import "github.com/valyala/fastjson"

type fastjsonParser = fastjson.Parser
