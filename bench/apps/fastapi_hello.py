"""The hello-world FastAPI app of bench/asgi.py, served by ``tether start --app`` and by uvicorn alike."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
