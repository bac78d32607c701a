"""One validator per source format, each turning a decoded payload into normalized Alerts."""
