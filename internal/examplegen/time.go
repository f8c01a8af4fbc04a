package main

import "time"

// timeZero keeps the gzip header free of the build time, so regenerating
// the capture gives the same bytes.
var timeZero = time.Time{}
