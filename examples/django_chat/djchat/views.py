"""Django views of the chat: the page (log-in required) and a JSON view of the last messages."""

from collections import deque

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render

HISTORY: deque = deque(maxlen=50)
"""The last messages, kept by this process (the example runs one worker); routes.py appends."""


@login_required
def chat(request):
    return render(request, "chat.html")


@login_required
def history(request):
    return JsonResponse(list(HISTORY), safe=False)
