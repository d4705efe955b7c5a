"""A FastAPI app: JSON bodies validated by pydantic, path and query parameters."""
import os

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/")
async def root():
    return {"message": "Hello, world!"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str = None):
    return {"item_id": item_id, "q": q, "pid": os.getpid()}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "price": item.price, "double": item.price * 2}
