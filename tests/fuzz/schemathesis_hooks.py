# Schemathesis hooks for tests/openapi.rs: WHIP and WHEP bodies are text
# (SDP offers, trickled candidates); schemathesis only knows JSON, forms and
# the like out of the box.
import schemathesis


@schemathesis.serializer("application/sdp", "application/trickle-ice-sdpfrag")
def text_body(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
