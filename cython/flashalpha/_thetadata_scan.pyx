# cython: language_level=3
"""A compiled scanner for the Theta Terminal's stream messages (`flashalpha.feeds.thetadata`).

The Terminal sends one JSON object per message: ``{"header":{"type":"QUOTE",...},
"contract":{...},"quote":{...}}`` (or ``"trade"`` / ``"ohlc"``). `scan_messages` reads a burst of
such frames straight into `EventRecord`s without building Python objects per field.

It is a fast path, never a judge: a frame is taken only when it is well-formed JSON whose every
field has the type and range the msgspec structs of `feeds.thetadata` demand, and its values are
exactly the ones msgspec would decode (floats correctly rounded). Anything else -- other message
types, a wrong type, a value out of range, escapes or non-ASCII text, exponents, duplicate
keys -- is left to msgspec (`KIND_DEFERRED`), which accepts it or rejects it naming the value.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItemWithError
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLong
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_CheckExact
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcmp, memcpy, strlen


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    double PyOS_string_to_double(const char* s, char** endptr, object overflow) except? -1.0


ctypedef unsigned char uchar

# Event kinds, one per frame; must equal the KIND_* constants exported below.
cdef enum:
    DEFERRED = 0
    QUOTE = 1
    TRADE = 2
    OHLC = 3

KIND_DEFERRED = DEFERRED
KIND_QUOTE = QUOTE
KIND_TRADE = TRADE
KIND_OHLC = OHLC

# What the scanner itself reads (anything beyond is deferred).
cdef enum:
    MAX_DEPTH = 16  # nesting of skipped values
    MAX_DIGITS = 18  # an int64 holds every 18-digit number
    MAX_NUMBER_TEXT = 64

# Limits of the msgspec types in feeds.thetadata (Size, MsOfDay, Date), and of plain ints.
cdef int64_t SIZE_MAX_VALUE = 4_294_967_295
cdef int64_t MS_OF_DAY_END = 86_400_000 + 3_600_000
cdef int64_t DATE_MIN = 19700101
cdef int64_t DATE_MAX = 20991231
cdef uint64_t EXACT_MANTISSA = 1 << 53
cdef int64_t INT64_MAX_VALUE = 999_999_999_999_999_999  # the largest MAX_DIGITS number
cdef int64_t INT64_MIN_VALUE = -999_999_999_999_999_999

cdef double[23] POWERS_OF_TEN
POWERS_OF_TEN[0] = 1.0
for _i in range(1, 23):
    POWERS_OF_TEN[_i] = POWERS_OF_TEN[_i - 1] * 10.0


ctypedef struct EventRecord:
    # Must match flashalpha.feeds.thetadata.EVENT_DTYPE (checked at import there).
    int64_t row       # registry row; -1 until resolved
    double price      # quote: bid; trade: price
    double ask        # quote: ask
    int64_t size      # quote: bid_size; trade: size
    int64_t ask_size  # quote: ask_size
    int64_t exchange  # quote: bid_exchange; trade: exchange (ThetaData codes)
    int64_t code      # quote: ask_exchange; trade: condition (ThetaData codes)
    int64_t ms_of_day
    int64_t date      # YYYYMMDD as sent (not yet checked to be a calendar date)


def record_size():
    """sizeof(EventRecord), for the import-time check against the numpy dtype."""
    return sizeof(EventRecord)


ctypedef struct Number:
    bint negative
    bint fraction     # has a '.': a float token
    uint64_t mantissa # all digits, the decimal point removed
    int fraction_digits
    const uchar* start
    const uchar* end


# --- tokens --------------------------------------------------------------------------------
# Each returns the position after what it read, or NULL to defer the frame to msgspec.


cdef inline const uchar* _space(const uchar* p, const uchar* end) noexcept nogil:
    while p < end and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
        p += 1
    return p


cdef inline const uchar* _string(
    const uchar* p, const uchar* end, const uchar** start, Py_ssize_t* size
) noexcept nogil:
    """A string of printable ASCII without escapes (p at its opening quote)."""
    if p >= end or p[0] != 34:  # '"'
        return NULL
    p += 1
    start[0] = p
    while p < end:
        if p[0] == 34:
            size[0] = p - start[0]
            return p + 1
        if p[0] == 92 or p[0] < 32 or p[0] >= 127:  # escape, control or non-ASCII
            return NULL
        p += 1
    return NULL


cdef inline const uchar* _number(const uchar* p, const uchar* end, Number* number) noexcept nogil:
    """JSON's number grammar, without exponents and with at most MAX_DIGITS digits."""
    cdef int digits = 0
    number.start = p
    number.negative = False
    number.fraction = False
    number.mantissa = 0
    number.fraction_digits = 0
    if p < end and p[0] == 45:  # '-'
        number.negative = True
        p += 1
    if p >= end or not (48 <= p[0] <= 57):
        return NULL
    if p[0] == 48:  # a leading zero stands alone
        p += 1
        digits = 1
    else:
        while p < end and 48 <= p[0] <= 57:
            number.mantissa = number.mantissa * 10 + (p[0] - 48)
            digits += 1
            p += 1
            if digits > MAX_DIGITS:
                return NULL
    if p < end and p[0] == 46:  # '.'
        p += 1
        number.fraction = True
        if p >= end or not (48 <= p[0] <= 57):
            return NULL
        while p < end and 48 <= p[0] <= 57:
            number.mantissa = number.mantissa * 10 + (p[0] - 48)
            number.fraction_digits += 1
            digits += 1
            p += 1
            if digits > MAX_DIGITS:
                return NULL
    if p < end and (p[0] == 101 or p[0] == 69):  # an exponent: left to msgspec
        return NULL
    number.end = p
    return p


cdef inline const uchar* _int(
    const uchar* p, const uchar* end, int64_t low, int64_t high, int64_t* value
) noexcept nogil:
    """An integer token (not a float) within [low, high]."""
    cdef Number number
    cdef int64_t v
    p = _number(p, end, &number)
    if p == NULL or number.fraction:
        return NULL
    v = <int64_t>number.mantissa
    if number.negative:
        v = -v
    if v < low or v > high:
        return NULL
    value[0] = v
    return p


cdef const uchar* _float(const uchar* p, const uchar* end, double* value) noexcept:
    """A number as msgspec decodes it into a float: correctly rounded."""
    cdef Number number
    cdef char[MAX_NUMBER_TEXT] text
    cdef Py_ssize_t length
    cdef double v
    p = _number(p, end, &number)
    if p == NULL:
        return NULL
    if not number.fraction:
        # An integer token becomes an int first, then a float: "-0" is 0.0, not -0.0.
        v = <double><int64_t>number.mantissa
        value[0] = -v if number.negative and number.mantissa else v
        return p
    if number.mantissa <= EXACT_MANTISSA and number.fraction_digits <= 22:
        # Both operands exact, so the IEEE quotient is the correctly rounded value (Clinger).
        v = <double>number.mantissa / POWERS_OF_TEN[number.fraction_digits]
        value[0] = -v if number.negative else v
        return p
    length = number.end - number.start
    if length >= MAX_NUMBER_TEXT:
        return NULL
    memcpy(text, number.start, length)
    text[length] = 0
    try:
        value[0] = PyOS_string_to_double(text, NULL, None)  # correctly rounded (dtoa)
    except Exception:
        return NULL
    return p


cdef const uchar* _skip(const uchar* p, const uchar* end, int depth) noexcept nogil:
    """Any JSON value, checked for well-formedness (within this scanner's subset)."""
    cdef const uchar* start = NULL
    cdef Py_ssize_t size = 0
    cdef Number number
    if p >= end or depth > MAX_DEPTH:
        return NULL
    if p[0] == 34:
        return _string(p, end, &start, &size)
    if p[0] == 123:  # '{'
        p = _space(p + 1, end)
        if p < end and p[0] == 125:
            return p + 1
        while True:
            p = _string(p, end, &start, &size)
            if p == NULL:
                return NULL
            p = _space(p, end)
            if p >= end or p[0] != 58:  # ':'
                return NULL
            p = _skip(_space(p + 1, end), end, depth + 1)
            if p == NULL:
                return NULL
            p = _space(p, end)
            if p >= end:
                return NULL
            if p[0] == 125:
                return p + 1
            if p[0] != 44:  # ','
                return NULL
            p = _space(p + 1, end)
    if p[0] == 91:  # '['
        p = _space(p + 1, end)
        if p < end and p[0] == 93:
            return p + 1
        while True:
            p = _skip(p, end, depth + 1)
            if p == NULL:
                return NULL
            p = _space(p, end)
            if p >= end:
                return NULL
            if p[0] == 93:
                return p + 1
            if p[0] != 44:
                return NULL
            p = _space(p + 1, end)
    if p[0] == 116:
        return p + 4 if end - p >= 4 and memcmp(p, b"true", 4) == 0 else NULL
    if p[0] == 102:
        return p + 5 if end - p >= 5 and memcmp(p, b"false", 5) == 0 else NULL
    if p[0] == 110:
        return p + 4 if end - p >= 4 and memcmp(p, b"null", 4) == 0 else NULL
    return _number(p, end, &number)


cdef inline bint _is(const uchar* key, Py_ssize_t size, const char* name, Py_ssize_t length) noexcept nogil:
    return size == length and memcmp(key, name, length) == 0


# --- objects -------------------------------------------------------------------------------
# An object is read key by key, in any order; `seen` bits catch duplicate keys (msgspec keeps
# the last, we defer) and missing required ones. Unknown keys are skipped, as msgspec does.

cdef inline const uchar* _next_key(
    const uchar* p, const uchar* end, const uchar** key, Py_ssize_t* size
) noexcept nogil:
    p = _string(p, end, key, size)
    if p == NULL:
        return NULL
    p = _space(p, end)
    if p >= end or p[0] != 58:
        return NULL
    return _space(p + 1, end)


cdef inline const uchar* _after_value(const uchar* p, const uchar* end, bint* closed) noexcept nogil:
    """Past the ',' or '}' that follows a member's value."""
    p = _space(p, end)
    if p >= end:
        return NULL
    if p[0] == 125:
        closed[0] = True
        return p + 1
    if p[0] != 44:
        return NULL
    closed[0] = False
    return _space(p + 1, end)


cdef inline const uchar* _open(const uchar* p, const uchar* end, bint* empty) noexcept nogil:
    if p >= end or p[0] != 123:
        return NULL
    p = _space(p + 1, end)
    empty[0] = p < end and p[0] == 125
    return p + 1 if empty[0] else p


cdef const uchar* _header(const uchar* p, const uchar* end, int* kind) noexcept nogil:
    """The header of a QUOTE, TRADE or OHLC message (others are deferred)."""
    cdef const uchar* key = NULL
    cdef const uchar* text = NULL
    cdef Py_ssize_t size = 0, length = 0
    cdef bint closed = False
    cdef int seen = 0
    p = _open(p, end, &closed)
    while p != NULL and not closed:
        p = _next_key(p, end, &key, &size)
        if p == NULL:
            return NULL
        if _is(key, size, "type", 4):
            if seen & 1:
                return NULL
            seen |= 1
            p = _string(p, end, &text, &length)
            if p == NULL:
                return NULL
            if _is(text, length, "QUOTE", 5):
                kind[0] = QUOTE
            elif _is(text, length, "TRADE", 5):
                kind[0] = TRADE
            elif _is(text, length, "OHLC", 4):
                kind[0] = OHLC
            else:
                return NULL  # STATUS, REQ_RESPONSE, or a type msgspec will name
        elif _is(key, size, "status", 6):
            if seen & 2:
                return NULL
            seen |= 2
            p = _string(p, end, &text, &length)
        elif _is(key, size, "response", 8) or _is(key, size, "req_id", 6):
            return NULL  # typed fields of control messages
        else:
            p = _skip(p, end, 1)
        if p == NULL:
            return NULL
        p = _after_value(p, end, &closed)
    if p == NULL or not seen & 1:
        return NULL
    return p


# A block's fields: name, type and range as the msgspec struct declares them, where the value
# goes in an EventRecord (or nowhere: checked, then dropped), and whether it is required.

cdef enum:
    INT = 0
    FLOAT = 1
    MAX_FIELDS = 10

ctypedef struct Field:
    const char* name
    Py_ssize_t length
    int type
    int64_t low
    int64_t high
    Py_ssize_t offset  # into EventRecord; -1: checked, not kept
    bint required

ctypedef struct Block:
    int count
    Field[MAX_FIELDS] fields

cdef EventRecord _layout
cdef Py_ssize_t NOWHERE = -1


cdef Py_ssize_t _at(void* field) noexcept:
    return <char*>field - <char*>&_layout


cdef void _field(
    Block* block, const char* name, int type, int64_t low, int64_t high,
    Py_ssize_t offset, bint required,
) noexcept:
    cdef Field* field = &block.fields[block.count]
    field.name = name
    field.length = strlen(name)
    field.type = type
    field.low = low
    field.high = high
    field.offset = offset
    field.required = required
    block.count += 1


cdef Block QUOTE_BLOCK, TRADE_BLOCK, OHLC_BLOCK
QUOTE_BLOCK.count = TRADE_BLOCK.count = OHLC_BLOCK.count = 0
# ThetaQuote
_field(&QUOTE_BLOCK, "ms_of_day", INT, 0, MS_OF_DAY_END - 1, _at(&_layout.ms_of_day), True)
_field(&QUOTE_BLOCK, "bid_size", INT, 0, SIZE_MAX_VALUE, _at(&_layout.size), True)
_field(&QUOTE_BLOCK, "bid", FLOAT, 0, 0, _at(&_layout.price), True)
_field(&QUOTE_BLOCK, "ask_size", INT, 0, SIZE_MAX_VALUE, _at(&_layout.ask_size), True)
_field(&QUOTE_BLOCK, "ask", FLOAT, 0, 0, _at(&_layout.ask), True)
_field(&QUOTE_BLOCK, "date", INT, DATE_MIN, DATE_MAX, _at(&_layout.date), True)
_field(&QUOTE_BLOCK, "bid_exchange", INT, 0, INT64_MAX_VALUE, _at(&_layout.exchange), False)
_field(&QUOTE_BLOCK, "ask_exchange", INT, 0, INT64_MAX_VALUE, _at(&_layout.code), False)
_field(&QUOTE_BLOCK, "bid_condition", INT, INT64_MIN_VALUE, INT64_MAX_VALUE, NOWHERE, False)
_field(&QUOTE_BLOCK, "ask_condition", INT, INT64_MIN_VALUE, INT64_MAX_VALUE, NOWHERE, False)
# ThetaTrade
_field(&TRADE_BLOCK, "ms_of_day", INT, 0, MS_OF_DAY_END - 1, _at(&_layout.ms_of_day), True)
_field(&TRADE_BLOCK, "size", INT, 0, SIZE_MAX_VALUE, _at(&_layout.size), True)
_field(&TRADE_BLOCK, "price", FLOAT, 0, 0, _at(&_layout.price), True)
_field(&TRADE_BLOCK, "date", INT, DATE_MIN, DATE_MAX, _at(&_layout.date), True)
_field(&TRADE_BLOCK, "sequence", INT, INT64_MIN_VALUE, INT64_MAX_VALUE, NOWHERE, False)
_field(&TRADE_BLOCK, "condition", INT, 0, INT64_MAX_VALUE, _at(&_layout.code), False)
_field(&TRADE_BLOCK, "exchange", INT, 0, INT64_MAX_VALUE, _at(&_layout.exchange), False)
# ThetaOhlc: counted, not applied, so only checked; every field has a default
_field(&OHLC_BLOCK, "ms_of_day", INT, 0, MS_OF_DAY_END - 1, NOWHERE, False)
_field(&OHLC_BLOCK, "open", FLOAT, 0, 0, NOWHERE, False)
_field(&OHLC_BLOCK, "high", FLOAT, 0, 0, NOWHERE, False)
_field(&OHLC_BLOCK, "low", FLOAT, 0, 0, NOWHERE, False)
_field(&OHLC_BLOCK, "close", FLOAT, 0, 0, NOWHERE, False)
_field(&OHLC_BLOCK, "volume", INT, INT64_MIN_VALUE, INT64_MAX_VALUE, NOWHERE, False)
_field(&OHLC_BLOCK, "count", INT, INT64_MIN_VALUE, INT64_MAX_VALUE, NOWHERE, False)
_field(&OHLC_BLOCK, "date", INT, INT64_MIN_VALUE, INT64_MAX_VALUE, NOWHERE, False)


cdef const uchar* _block(
    const uchar* p, const uchar* end, const Block* block, EventRecord* event
) noexcept:
    """One of the blocks above into `event`; optional fields absent are 0."""
    cdef const uchar* key = NULL
    cdef Py_ssize_t size = 0
    cdef bint closed = False
    cdef int seen = 0, index = 0, bit = 0
    cdef const Field* field
    cdef int64_t scratch_int = 0
    cdef double scratch_float = 0.0
    cdef char* out = <char*>event
    for index in range(block.count):
        field = &block.fields[index]
        if field.offset >= 0 and not field.required:
            (<int64_t*>(out + field.offset))[0] = 0
    p = _open(p, end, &closed)
    while p != NULL and not closed:
        p = _next_key(p, end, &key, &size)
        if p == NULL:
            return NULL
        field = NULL
        for index in range(block.count):
            if _is(key, size, block.fields[index].name, block.fields[index].length):
                field = &block.fields[index]
                bit = 1 << index
                break
        if field == NULL:
            p = _skip(p, end, 2)
        elif seen & bit:
            return NULL  # a duplicate key
        else:
            seen |= bit
            if field.type == FLOAT:
                p = _float(
                    p, end,
                    <double*>(out + field.offset) if field.offset >= 0 else &scratch_float,
                )
            else:
                p = _int(
                    p, end, field.low, field.high,
                    <int64_t*>(out + field.offset) if field.offset >= 0 else &scratch_int,
                )
        if p == NULL:
            return NULL
        p = _after_value(p, end, &closed)
    if p == NULL:
        return NULL
    for index in range(block.count):
        if block.fields[index].required and not seen & (1 << index):
            return NULL
    return p


cdef int _message(
    const uchar* p, const uchar* end, EventRecord* event,
    const uchar** contract, Py_ssize_t* contract_size,
) noexcept:
    """The kind of one message, or DEFERRED; fills `event` and the contract block's span."""
    cdef const uchar* key = NULL
    cdef const uchar* block
    cdef Py_ssize_t size = 0
    cdef bint closed = False
    cdef int kind = DEFERRED
    cdef int seen = 0, bit
    p = _open(_space(p, end), end, &closed)
    while p != NULL and not closed:
        p = _next_key(p, end, &key, &size)
        if p == NULL:
            return DEFERRED
        bit = 0
        if _is(key, size, "header", 6):
            bit = 1
            p = _header(p, end, &kind)
        elif _is(key, size, "contract", 8):
            bit = 2
            if p >= end or p[0] != 123:
                return DEFERRED  # null or not an object: msgspec and the resolver say why
            block = p
            p = _skip(p, end, 1)
            contract[0] = block
            contract_size[0] = p - block if p != NULL else 0
        elif _is(key, size, "quote", 5):
            bit = 4
            p = _block(p, end, &QUOTE_BLOCK, event)
        elif _is(key, size, "trade", 5):
            bit = 8
            event.ask = 0.0
            event.ask_size = 0
            p = _block(p, end, &TRADE_BLOCK, event)
        elif _is(key, size, "ohlc", 4):
            bit = 16
            p = _block(p, end, &OHLC_BLOCK, event)
        else:
            p = _skip(p, end, 1)
        if p == NULL or seen & bit:
            return DEFERRED
        seen |= bit
        p = _after_value(p, end, &closed)
    if p == NULL or _space(p, end) != end:
        return DEFERRED
    # Exactly the header, the contract and the block of the header's type (a message that
    # carries another block too is left to msgspec, which checks that block as well).
    if kind == QUOTE and seen & 31 == 7:
        return QUOTE
    if kind == TRADE and seen & 31 == 11:
        return TRADE
    if kind == OHLC and seen & 31 == 19:
        return OHLC
    return DEFERRED


def scan_messages(list frames, dict rows, EventRecord[::1] events, uint8_t[::1] kinds):
    """Scan `frames` (bytes or str, one message each) into `events` and `kinds`.

    `rows` maps a contract block's exact bytes to its registry row (the resolver's cache).
    For each frame i, `kinds[i]` is KIND_QUOTE / KIND_TRADE / KIND_OHLC with `events[i]`
    filled (prices in dollars, ms_of_day and date as sent), or KIND_DEFERRED: the frame is for
    msgspec. A quote or trade whose contract block is not a row in `rows` (new, or rejected
    before) gets row -1 and is listed in the result: (indices, contract block bytes).
    """
    cdef Py_ssize_t n = PyList_GET_SIZE(frames)
    cdef Py_ssize_t i, size = 0, contract_size = 0
    cdef const uchar* data
    cdef const uchar* contract = NULL
    cdef object frame, key
    cdef PyObject* found
    cdef int64_t row
    cdef int kind
    cdef EventRecord* event
    cdef list missing_at = [], missing_keys = []
    if events.shape[0] < n or kinds.shape[0] < n:
        raise ValueError("events and kinds must hold one record per frame")
    for i in range(n):
        frame = <object>PyList_GET_ITEM(frames, i)
        if PyBytes_CheckExact(frame):
            data = <const uchar*>PyBytes_AS_STRING(frame)
            size = len(<bytes>frame)
        elif PyUnicode_CheckExact(frame):
            try:
                data = <const uchar*>PyUnicode_AsUTF8AndSize(frame, &size)
            except UnicodeError:
                kinds[i] = DEFERRED
                continue
        else:
            kinds[i] = DEFERRED
            continue
        event = &events[i]
        kind = _message(data, data + size, event, &contract, &contract_size)
        kinds[i] = kind
        if kind == QUOTE or kind == TRADE:
            key = PyBytes_FromStringAndSize(<const char*>contract, contract_size)
            found = PyDict_GetItemWithError(rows, key)
            row = PyLong_AsLongLong(<object>found) if found != NULL else -1
            if row < 0:
                missing_at.append(i)
                missing_keys.append(key)
                row = -1
            event.row = row
    return missing_at, missing_keys
