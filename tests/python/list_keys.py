"""Print the keys under a prefix of a bucket on the S3 server the environment names
(AWS_ENDPOINT_URL), one a line: `list_keys.py BUCKET PREFIX`."""

import os
import sys
import urllib.request
import xml.etree.ElementTree as ET

bucket, prefix = sys.argv[1], sys.argv[2]
url = "%s/%s?list-type=2&prefix=%s" % (os.environ["AWS_ENDPOINT_URL"], bucket, prefix)
req = urllib.request.Request(url, headers={
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
                     "SignedHeaders=host, Signature=0",
})
body = urllib.request.urlopen(req).read()
ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
for key in ET.fromstring(body).findall(".//s3:Contents/s3:Key", ns):
    print(key.text)
