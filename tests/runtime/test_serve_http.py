"""The inference server's HTTP/1.1 over raw sockets: keep-alive, pipelining, chunked bodies,
100-continue, limits, HTTP/1.0, closing, malformed input, and a fuzz test.

One server process for the module, with small limits: 64 KiB bodies, 4 KiB heads.
"""

from __future__ import annotations

import json
import socket
import string
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from serve_support import (
    Server,
    exchange,
    infer_body,
    parse_responses,
    post,
    read_responses,
    running,
    wine_model,
    wine_rows,
)

MAX_BODY = 64 * 1024
MAX_HEAD = 4096
INFER = "/v2/models/wine/infer"
LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = wine_model(tmp_path_factory.mktemp("model") / "model.onnx")
    args = ["--name", "wine", "--max-body-bytes", str(MAX_BODY)]
    args += ["--max-header-bytes", str(MAX_HEAD)]
    with running(model, tmp_path_factory.mktemp("server"), args) as process:
        yield process


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def error_of(body: bytes) -> str:
    message: str = json.loads(body)["error"]
    return message


def test_keep_alive_serves_many_requests_on_one_connection(server: Server) -> None:
    with connect(server) as sock:
        for i in range(3):
            sock.sendall(post(INFER, infer_body(wine_rows(1), f"k{i}")))
            (response,), _ = read_responses(sock, 1)
            assert response.status == 200
            assert json.loads(response.body)["id"] == f"k{i}"
            assert "connection" not in response.headers
            assert response.headers["content-type"] == "application/json"
            assert "date" in response.headers


def test_pipelined_responses_keep_the_request_order(server: Server) -> None:
    requests = [
        post(INFER, infer_body(wine_rows(2), "first")),
        LIVE,
        post(INFER, b"{}"),
        post(INFER, infer_body(wine_rows(1), "fourth")),
        b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n",
    ]
    with connect(server) as sock:
        sock.sendall(b"".join(requests))
        responses, _ = read_responses(sock, len(requests))
    assert [response.status for response in responses] == [200, 200, 400, 200, 200]
    assert json.loads(responses[0].body)["id"] == "first"
    assert json.loads(responses[1].body) == {"live": True}
    assert json.loads(responses[3].body)["id"] == "fourth"
    assert json.loads(responses[4].body) == {"ready": True}


def chunked(body: bytes, size: int = 100) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_chunked_bodies(server: Server) -> None:
    head = f"POST {INFER} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    with connect(server) as sock:
        sock.sendall(head + chunked(infer_body(wine_rows(3), "chunks")))
        (response,), _ = read_responses(sock, 1)
    assert response.status == 200
    assert json.loads(response.body)["outputs"][0]["shape"] == [3]


def test_bad_chunked_encoding_is_400_and_closes(server: Server) -> None:
    head = f"POST {INFER} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    data = exchange(server.port, head + b"zz\r\nabc\r\n0\r\n\r\n" + LIVE)
    (response,) = parse_responses(data)
    assert response.status == 400
    assert "malformed HTTP request" in error_of(response.body)
    assert response.headers["connection"] == "close"


def test_expect_100_continue(server: Server) -> None:
    body = infer_body(wine_rows(1), "expected")
    head = post(INFER, b"", "Expect: 100-continue\r\n").replace(
        b"Content-Length: 0", b"Content-Length: %d" % len(body)
    )
    with connect(server) as sock:
        sock.sendall(head)
        (interim,), _ = read_responses(sock, 1)
        assert interim.status == 100
        sock.sendall(body)
        (response,), _ = read_responses(sock, 1)
    assert response.status == 200 and json.loads(response.body)["id"] == "expected"


def test_expect_100_continue_with_a_body_over_the_limit_gets_413_at_once(server: Server) -> None:
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: test\r\nContent-Length: {MAX_BODY + 1}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    with connect(server) as sock:
        sock.sendall(head)
        (response,), _ = read_responses(sock, 1)
    assert response.status == 413
    assert error_of(response.body) == f"request body exceeds {MAX_BODY} bytes"
    assert response.headers["connection"] == "close"


def test_unsupported_expectation_is_417(server: Server) -> None:
    data = exchange(server.port, post(INFER, b"{}", "Expect: something-else\r\n"))
    assert parse_responses(data)[0].status == 417


def refused_413(server: Server) -> float:
    for family in text_string_to_metric_families(server.metrics()):
        for sample in family.samples:
            if sample.name == "gyre_inference_requests_total" and sample.labels["code"] == "413":
                return sample.value
    raise AssertionError("no 413 series")


@pytest.mark.parametrize("encoding", ["length", "chunked"])
def test_bodies_over_the_limit_are_413(server: Server, encoding: str) -> None:
    before = refused_413(server)
    body = b"x" * (MAX_BODY + 1)
    if encoding == "length":
        data = exchange(server.port, post(INFER, body))
    else:
        head = f"POST {INFER} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        data = exchange(server.port, head.encode() + chunked(body, 8192))
    (response,) = parse_responses(data)
    assert response.status == 413
    assert "request body exceeds" in error_of(response.body)
    assert refused_413(server) == before + 1


def test_heads_over_the_limit_are_431(server: Server) -> None:
    long_header = f"X-Padding: {'p' * MAX_HEAD}\r\n"
    (response,) = parse_responses(exchange(server.port, post(INFER, b"{}", long_header)))
    assert response.status == 431
    long_url = f"GET /v2/health/live?{'q' * MAX_HEAD} HTTP/1.1\r\n\r\n".encode()
    (response,) = parse_responses(exchange(server.port, long_url))
    assert response.status == 431


def test_a_head_that_never_ends_is_431_before_it_fills_memory(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nX-Endless: ")
        sock.settimeout(0.05)
        data = b""
        for _ in range(64):
            try:
                sock.sendall(b"a" * 1024)
                data += sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                break
            if data:
                break
        sock.settimeout(10)
        responses, _ = read_responses(sock, 1) if not data else (parse_responses(data), data)
    assert responses[0].status == 431


def test_http_1_0(server: Server) -> None:
    data = exchange(server.port, b"GET /v2/health/live HTTP/1.0\r\n\r\n", half_close=False)
    (response,) = parse_responses(data)
    assert response.status == 200 and response.headers["connection"] == "close"
    request = b"GET /v2/health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(request + request)
        responses, _ = read_responses(sock, 2)
    assert [response.headers["connection"] for response in responses] == ["keep-alive"] * 2


def test_connection_close_is_honoured(server: Server) -> None:
    request = b"GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n"
    data = exchange(server.port, request + LIVE, half_close=False)
    (response,) = parse_responses(data)
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT A REQUEST\r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /v2/health/live HTTP/2.0\r\n\r\n",
        b"GET /v2/health/live\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_malformed_requests_are_400_and_close(server: Server, request_bytes: bytes) -> None:
    (response,) = parse_responses(exchange(server.port, request_bytes, half_close=False))
    assert response.status == 400
    assert error_of(response.body)
    assert response.headers["connection"] == "close"


def test_a_target_that_is_no_url_is_400(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET http://[::1/v2 HTTP/1.1\r\n\r\n")
        (response,), _ = read_responses(sock, 1)
    assert response.status == 400
    assert "malformed request target" in error_of(response.body)


def test_a_request_cut_short_gets_400(server: Server) -> None:
    (response,) = parse_responses(exchange(server.port, post(INFER, b"{}")[:-1]))
    assert response.status == 400
    assert "incomplete request" in error_of(response.body)


def test_wrong_methods_are_405_with_allow(server: Server) -> None:
    status, headers, _ = server.request("GET", INFER)
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = server.request("POST", "/v2/health/live", b"")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_head_answers_headers_without_the_body(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"HEAD /v2 HTTP/1.1\r\n\r\n" + LIVE)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: " in head
    assert rest.startswith(b"HTTP/1.1 200 OK")


TOKENS = string.ascii_letters + string.digits + "-_.~"
PATHS = st.one_of(
    st.sampled_from(
        [
            INFER,
            "/v2/models/wine",
            "/v2/models/wine/ready",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2",
            "/metrics",
            "/v2/models/wine/versions/1/infer",
        ]
    ),
    st.text(TOKENS + "/%?=&", max_size=60).map(lambda text: "/" + text),
    st.text(TOKENS + "/%?=&:[]@#", max_size=40).map(lambda text: "http://" + text),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(
        ["Content-Type", "Inference-Header-Content-Length", "Accept", "Connection", "X-Any"]
    ),
    st.text(string.ascii_letters + "-", min_size=1, max_size=20),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["0", "12", "-3", "keep-alive", "close", "application/json", "x"]),
    st.text(string.printable.strip() + " ", max_size=40),
)
JSON_BODIES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "inputs",
                    "name",
                    "shape",
                    "datatype",
                    "data",
                    "id",
                    "outputs",
                    "parameters",
                    "binary_data_size",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """An HTTP request whose parts are each plausible or random."""
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]))
    path = draw(PATHS)
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5))
    if draw(st.booleans()):
        body = json.dumps(draw(JSON_BODIES)).encode()  # NaN and Infinity included
    else:
        body = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        rows = draw(st.integers(1, 3))
        body = infer_body(wine_rows(rows))
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz"]
    lines += [f"{name}: {value}" for name, value in headers]
    framing = draw(st.sampled_from(["length", "chunked", "none"]))
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = chunked(body, draw(st.integers(1, 64)))
    else:
        body = b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace") + body


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_fuzzed_requests_get_200_or_a_4xx(server: Server, request: bytes) -> None:
    responses = parse_responses(exchange(server.port, request), head=request.startswith(b"HEAD"))
    assert responses, f"no response to {request[:300]!r}"
    final = [response for response in responses if response.status >= 200]
    assert final, f"only interim responses to {request[:300]!r}"
    for response in final:
        assert response.status == 200 or 400 <= response.status < 500, (request, response)
        if response.status >= 400 and not request.startswith(b"HEAD"):
            assert error_of(response.body)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(min_size=1, max_size=400))
def test_random_bytes_never_crash_the_server(server: Server, data: bytes) -> None:
    answer = exchange(server.port, data)
    for response in parse_responses(answer):
        assert response.status < 500, (data, response)
    assert server.process.poll() is None
    assert server.request("GET", "/v2/health/live")[0] == 200


def test_the_server_survived_everything(server: Server) -> None:
    assert server.process.poll() is None
    assert "Traceback" not in server.stderr()
