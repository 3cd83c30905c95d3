package client

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// rateRetries is how many times a request refused for the server's rate
// limit (429 with Retry-After) is sent again after the wait it names.
const rateRetries = 3

// maxRateWait is the longest Retry-After the client waits out itself;
// longer ones are returned to the caller as the error they are.
const maxRateWait = 10 * time.Second

// do sends req, waiting out and retrying refusals for the rate limit when
// the body can be sent again.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.http.Do(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt == rateRetries {
			return resp, err
		}
		secs, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
		wait := time.Duration(secs) * time.Second
		if perr != nil || secs < 0 || wait > maxRateWait || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		t := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		case <-t.C:
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
	}
}
