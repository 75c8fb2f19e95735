module github.com/featured-dev/featured

go 1.26.0
