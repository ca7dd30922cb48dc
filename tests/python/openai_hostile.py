"""The official OpenAI SDK against `silk proxy` when the path to the enclave is hostile.

Usage: openai_hostile.py BASE_URL MODEL. The proxy's first sealed answer is altered on
the way (mid-stream); then a body too large for a sealed request is sent. Prints one JSON
object with the exceptions the SDK raised."""
import json
import sys

import openai
from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="not-needed-the-seal-is-the-auth", max_retries=0)
result = {}

received = []
try:
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        max_tokens=48,
        temperature=0,
        stream=True,
    ):
        if chunk.choices:
            received.append(chunk.choices[0].delta.content or "")
    result["stream_error"] = None
except openai.APIError as e:
    result["stream_error"] = {"type": type(e).__name__, "message": e.message, "body": e.body}
result["stream_received"] = "".join(received)

try:
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "x" * (5 << 20)}],
        max_tokens=4,
    )
    result["large_error"] = None
except openai.APIStatusError as e:
    result["large_error"] = {"type": type(e).__name__, "status": e.status_code, "body": e.body}

print(json.dumps(result))
