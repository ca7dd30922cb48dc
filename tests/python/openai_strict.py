"""The official OpenAI SDK against `silk proxy`: what silk implements beyond plain text
(logprobs, JSON-object answers, logit_bias), streamed and not, and what it refuses, each
refusal a BadRequestError whose `param` names the parameter.

Usage: openai_strict.py BASE_URL MODEL BANNED_IDS_JSON, where BANNED_IDS_JSON lists the
token ids that begin "Paris" in the model's vocabulary. Prints one JSON object."""
import json
import sys

import openai
from openai import OpenAI

base_url, model, banned = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = OpenAI(base_url=base_url, api_key="not-needed-the-seal-is-the-auth", max_retries=0)
FRANCE = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
out = {}


def chat_entry(e):
    return {
        "token": e.token,
        "logprob": e.logprob,
        "bytes": e.bytes,
        "top": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes} for t in e.top_logprobs],
    }


# Chat logprobs, whole and streamed (greedy: both must report the same tokens).
ask = dict(model=model, messages=FRANCE, max_tokens=16, temperature=0, logprobs=True, top_logprobs=3)
r = client.chat.completions.create(**ask)
out["chat_text"] = r.choices[0].message.content
out["chat_logprobs"] = [chat_entry(e) for e in r.choices[0].logprobs.content]
text, entries = [], []
for chunk in client.chat.completions.create(**ask, stream=True):
    if chunk.choices:
        c = chunk.choices[0]
        text.append(c.delta.content or "")
        if c.logprobs is not None and c.logprobs.content:
            entries.extend(chat_entry(e) for e in c.logprobs.content)
out["chat_stream_text"] = "".join(text)
out["chat_stream_logprobs"] = entries

# Completions logprobs (the legacy shape), whole and streamed.
ask = dict(model=model, prompt="The capital of France is", max_tokens=8, temperature=0, logprobs=2)
r = client.completions.create(**ask)
lp = r.choices[0].logprobs
out["completion"] = {
    "text": r.choices[0].text,
    "tokens": lp.tokens,
    "token_logprobs": lp.token_logprobs,
    "top_logprobs": lp.top_logprobs,
    "text_offset": lp.text_offset,
}
streamed = {"text": "", "tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
for chunk in client.completions.create(**ask, stream=True):
    if chunk.choices:
        c = chunk.choices[0]
        streamed["text"] += c.text
        if c.logprobs is not None:
            for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                streamed[key].extend(getattr(c.logprobs, key))
out["completion_stream"] = streamed


# JSON-object answers: several prompts, greedy and sampled, whole and streamed.
def parsed(text, finish):
    try:
        value = json.loads(text)
        return {"object": isinstance(value, dict), "finish": finish, "text": text}
    except ValueError as e:
        return {"object": False, "error": str(e), "finish": finish, "text": text}


objects = []
prompts = [
    ("Describe a cat as JSON with keys name, age and colour.", 0, 80),
    ("Give me a JSON object listing three fruits and their colours.", 0.8, 120),
    ("What is the capital of France? Reply in JSON.", 0, 40),
    ("Write a short poem.", 1.0, 60),
    ("List the planets.", 0, 8),
]
for i, (prompt, temperature, max_tokens) in enumerate(prompts):
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
        max_tokens=max_tokens,
        temperature=temperature,
        seed=i,
    )
    objects.append(parsed(r.choices[0].message.content, r.choices[0].finish_reason))
text, finish = [], None
for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": prompts[0][0]}],
    response_format={"type": "json_object"},
    max_tokens=80,
    temperature=0,
    stream=True,
):
    if chunk.choices:
        text.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
objects.append(parsed("".join(text), finish))
out["json"] = objects
out["json_stream_equals_whole"] = objects[-1]["text"] == objects[0]["text"]

# logit_bias: banning the tokens that begin "Paris" changes the greedy answer.
r = client.chat.completions.create(
    model=model, messages=FRANCE, max_tokens=16, temperature=0,
    logit_bias={str(i): -100 for i in banned},
)
out["banned_text"] = r.choices[0].message.content


# Refusals: each must be a BadRequestError naming the parameter.
def refusal(create, base, extra):
    kwargs = dict(base)
    kwargs.update(extra)
    try:
        create(**kwargs)
        return {"raised": None}
    except openai.BadRequestError as e:
        return {"raised": "BadRequestError", "param": e.param, "code": e.code, "message": e.message}
    except openai.APIError as e:
        return {"raised": type(e).__name__, "message": e.message}


FUNCTION = {"name": "f", "parameters": {"type": "object", "properties": {}}}
chat_refused = {
    "tools": dict(tools=[{"type": "function", "function": FUNCTION}]),
    "tool_choice": dict(tool_choice="auto"),
    "parallel_tool_calls": dict(parallel_tool_calls=True),
    "functions": dict(functions=[FUNCTION]),
    "function_call": dict(function_call="auto"),
    "response_format": dict(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    ),
    "n": dict(n=2),
    "audio": dict(audio={"voice": "alloy", "format": "wav"}),
    "modalities": dict(modalities=["text", "audio"]),
    "prediction": dict(prediction={"type": "content", "content": "Paris"}),
    "reasoning_effort": dict(reasoning_effort="low"),
    "verbosity": dict(verbosity="low"),
    "web_search_options": dict(web_search_options={}),
    "store": dict(store=True),
    "top_logprobs": dict(top_logprobs=2),
    "logit_bias": dict(logit_bias={"99999999": -100}),
    "messages[0].name": dict(messages=[{"role": "user", "content": "hi", "name": "ann"}]),
    "temprature": dict(extra_body={"temprature": 0}),
}
completion_refused = {
    "suffix": dict(suffix="."),
    "echo": dict(echo=True),
    "best_of": dict(best_of=2),
    "logprobs": dict(logprobs=6),
}
base_chat = dict(model=model, messages=FRANCE, max_tokens=4)
base_completion = dict(model=model, prompt="The capital of France is", max_tokens=4)
out["refused"] = {
    **{k: refusal(client.chat.completions.create, base_chat, v) for k, v in chat_refused.items()},
    **{
        "completions." + k: refusal(client.completions.create, base_completion, v)
        for k, v in completion_refused.items()
    },
}
# Ignored parameters are accepted.
r = client.chat.completions.create(
    **base_chat, user="u-1", metadata={"team": "a"}, store=False, service_tier="auto",
    tool_choice="none", modalities=["text"], stream_options=None,
)
out["ignored_accepted"] = r.choices[0].finish_reason is not None
print(json.dumps(out))
