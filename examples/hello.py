import json, platform, sys

print("hello from brig")
print(f"python {platform.python_version()} as uid", __import__("os").getuid(), file=sys.stderr)

# Whatever a job writes here comes back as the terminal event's "output".
with open("/work/out/result.json", "w") as f:
    json.dump({"answer": 42}, f)
