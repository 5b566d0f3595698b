"""A token bucket per connection: a steady rate with bursts."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, burst: int, now_ms: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated_ms = now_ms

    def take(self, now_ms: int) -> bool:
        elapsed = max(0, now_ms - self.updated_ms) / 1000
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated_ms = now_ms
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
