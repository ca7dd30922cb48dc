"""The official OpenAI SDK against `silk proxy`: a completion and a streamed completion.

Usage: openai_smoke.py BASE_URL MODEL. Prints one JSON object with what it received."""
import json
import sys

from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="not-needed-the-seal-is-the-auth")

chat = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    max_tokens=24,
    temperature=0,
)
streamed = []
finish = None
for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    max_tokens=24,
    temperature=0,
    stream=True,
):
    if chunk.choices:
        streamed.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
legacy = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
models = [m.id for m in client.models.list()]
print(json.dumps({
    "chat": chat.choices[0].message.content,
    "chat_finish": chat.choices[0].finish_reason,
    "usage": chat.usage.total_tokens,
    "stream": "".join(streamed),
    "stream_finish": finish,
    "completion": legacy.choices[0].text,
    "models": models,
}))
