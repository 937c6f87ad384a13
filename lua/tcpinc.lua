-- tcpinc.lua: Wireshark dissector for TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548).
--
-- One file: drop it into the personal Lua plugin folder ("tshark -G folders") or run
-- "tshark -X lua_script:tcpinc.lua". "tcpinc-analyze wireshark install" does the copying.
-- It follows the project's wire contract (shared/spec/tcpinc-wire.md, digest v2) and the
-- Python reference (tcpinc_analyze: wire, eno, tcpcrypt.messages, decryption) rule by rule.
--
--  * tcpeno: option kind 69 is registered in the "tcp.option" table; the pre-RFC
--    experimental form (kind 253/254, ExID 0x454E) is read from Wireshark's own
--    experimental-option fields (tcp.options.experimental.exid/.data), never by taking
--    kinds 253/254 away from Wireshark. Global suboption (b, a, z; implicit 0x00), TEP
--    suboptions with their v bit and length bytes; roles by the b bit (the pre-RFC
--    exception included); the negotiated TEP is the last valid one in B's option; one
--    fallback reason per connection, in the analyzer's order. Per connection (tcp.stream)
--    the outcome is shown as generated fields on every packet, so
--    "tcpeno.status == \"fallback\"" works as a display filter.
--  * tcpcrypt: a postdissector follows each direction's TCP byte stream itself
--    (retransmissions, reordering, gaps, snaplen truncation, 32-bit wrap) and delimits
--    Init1/Init2 (two-byte ciphers, pubkey_len in both readings, the 2016 tcpcryptd
--    layout) and frames of any size, several per segment or spanning many segments;
--    without a captured handshake the Init magic numbers are recognised.
--  * Decryption: preference tcpcrypt.keylog_file or $TCPCRYPT_KEYLOGFILE (key log v2,
--    re-read when it grows), and key logs embedded in the pcapng being read (Decryption
--    Secrets Blocks, read from the file itself); needs the Debian package lua-luaossl.
--    Every label: an ephemeral private key by ECDH in Lua (X25519/X448, P-256/P-521 on
--    luaossl's bignums), mk[j] key schedule, K || NR traffic keys, nonces frame_ID XOR NR
--    with the frame-ID offset base found on each direction's first frame, rekeys,
--    resumption through the ss chain with AEAD probing. Plaintext becomes the data source
--    "Decrypted tcpcrypt"; application data goes to Decode As, then the heuristics for
--    decrypted data, then the TCP port table, with its own reassembly, so HTTP shows as
--    HTTP on any port.
--  * One pass (Wireshark reading, tshark): a packet shows what the capture has shown up
--    to it; after the first pass (tshark -2 -Y frame, clicks in Wireshark) the final
--    outcome. Statistics > TCP-ENO and tcpcrypt, tshark -z tcpcrypt,summary.
--  * Conformance: broken RFC rules become expert infos carrying the analyzer's finding
--    code, plus tcpeno.conformance / tcpeno.conformance.rfc for filters.
--
-- Valid on Lua 5.2 (Wireshark <= 4.2) and 5.3/5.4 (Wireshark >= 4.4): no integer
-- division operator, no bitwise operators in the source, %d only with integers.
-- The field declarations between the GENERATED markers come from dissectors/fields.json
-- (python -m tcpinc_analyze.wireshark.luagen); edit the JSON, not that block.

local PLUGIN_VERSION = "0.3.0"

local M = {}            -- internals, returned when loaded outside Wireshark (tests)
local in_gui_process = type(gui_enabled) == "function" and gui_enabled() or false
local floor = math.floor
local table_unpack = table.unpack or unpack
local schar, sbyte, ssub, srep, sfmt = string.char, string.byte, string.sub, string.rep, string.format

-- ------------------------------------------------------------------ bit operations
local bxor, band, bor, rshift, lshift
if type(bit32) == "table" then
    bxor, band, bor, rshift, lshift = bit32.bxor, bit32.band, bit32.bor, bit32.rshift, bit32.lshift
else
    -- Lua 5.3+: operators exist, but 5.2 cannot parse them: compile them at run time.
    local chunk = load([[
        return function(a, b) return (a ~ b) & 0xffffffff end,
               function(a, b) return a & b end,
               function(a, b) return (a | b) & 0xffffffff end,
               function(a, n) return (a & 0xffffffff) >> n end,
               function(a, n) return (a << n) & 0xffffffff end
    ]])
    bxor, band, bor, rshift, lshift = chunk()
end
M.band, M.bxor = band, bxor

local function istr(x) return sfmt("%d", floor(x)) end

local function tohex(s)
    return (string.gsub(s, ".", function(c) return sfmt("%02x", sbyte(c)) end))
end

local function fromhex(h)
    if #h % 2 ~= 0 or string.find(h, "[^0-9a-fA-F]") then return nil end
    return (string.gsub(h, "..", function(x) return schar(tonumber(x, 16)) end))
end
M.tohex, M.fromhex = tohex, fromhex

local function be16(s, i) -- 1-based index; caller guarantees bounds
    local a, b = sbyte(s, i, i + 1)
    return a * 256 + b
end

local function be32(s, i)
    local a, b, c, d = sbyte(s, i, i + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

local function pack_be32(n)
    n = floor(n)
    return schar(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

local function pack_be64(n)
    n = floor(n)
    local hi = floor(n / 4294967296)
    return pack_be32(hi) .. pack_be32(n - hi * 4294967296)
end

local function pack_le64(n)
    return string.reverse(pack_be64(n))
end

local function xor16(a, b)
    local out = {}
    for i = 1, 16 do out[i] = schar(bxor(sbyte(a, i), sbyte(b, i))) end
    return table.concat(out)
end

-- ------------------------------------------------------------------ crypto (lua-luaossl)
local ossl = { ok = false, why = "not loaded" }
do
    local ok1, cipher = pcall(require, "openssl.cipher")
    local ok2, hmac = pcall(require, "openssl.hmac")
    local ok3, bignum = pcall(require, "openssl.bignum")
    if ok1 and ok2 and ok3 and type(cipher) == "table" and type(hmac) == "table" then
        ossl = { ok = true, cipher = cipher, hmac = hmac, bignum = bignum }
    else
        ossl.why = tostring(not ok1 and cipher or not ok2 and hmac or bignum)
    end
end
M.ossl = ossl

local function hmac_sha256(key, msg)
    local h = ossl.hmac.new(key, "sha256")
    return h:final(msg)
end

-- tcpcrypt's CPRF (RFC 8548 §3.1): the first L bytes of HKDF-Expand-SHA256(K, CONST, L),
-- CONST a byte string (one constant byte, or a constant byte followed by sn[i]).
local function cprf(key, const, length)
    local out, block, counter = "", "", 1
    while #out < length do
        block = hmac_sha256(key, block .. const .. schar(counter))
        out = out .. block
        counter = counter + 1
    end
    return ssub(out, 1, length)
end
M.cprf = cprf

-- RFC 8548 §4.3 constants, as the one-byte strings CPRF takes
local C_NEXTK, C_SESSID, C_REKEY, C_KEY_A, C_KEY_B, C_RESUME = "\1", "\2", "\3", "\4", "\5", "\6"
local K_LEN, RESUME_LEN, RESUME_HALF, RESUME_DEPTH = 32, 18, 9, 16
-- two-byte sym_cipher identifiers (§6, §7): ae_key_len; every ae_nonce_len is 12
local AEAD_KEYLEN = { [0x0001] = 16, [0x0002] = 32, [0x0010] = 32 }
local AEAD_ORDER = { 0x0001, 0x0002, 0x0010 }
local NR_LEN = 12
-- tcpcrypt TEPs (§5): bytes of the point, whether pubkey_len precedes it, uncompressed size
local TEPS = {
    [0x21] = { point = 33, prefix = true, uncompressed = 65, name = "P-256" },
    [0x22] = { point = 67, prefix = true, uncompressed = 133, name = "P-521" },
    [0x23] = { point = 32, prefix = false, name = "X25519" },
    [0x24] = { point = 56, prefix = false, name = "X448" },
}
M.TEPS, M.AEAD_KEYLEN = TEPS, AEAD_KEYLEN

local function cipher_run(name, encrypt, key, iv, data)
    local c = ossl.cipher.new(name)
    if encrypt then c:encrypt(key, iv, false) else c:decrypt(key, iv, false) end
    local out = c:update(data)
    return out .. (c:final() or "")
end

-- GF(2^128) multiplication of GHASH on 16-byte strings (4 x 32-bit words).
local function gf_mul(x, y)
    local z1, z2, z3, z4 = 0, 0, 0, 0
    local v1, v2, v3, v4 = be32(y, 1), be32(y, 5), be32(y, 9), be32(y, 13)
    for i = 1, 16 do
        local byte = sbyte(x, i)
        for bitpos = 7, 0, -1 do
            if floor(byte / 2 ^ bitpos) % 2 == 1 then
                z1, z2, z3, z4 = bxor(z1, v1), bxor(z2, v2), bxor(z3, v3), bxor(z4, v4)
            end
            local lsb = v4 % 2
            v4 = bor(rshift(v4, 1), lshift(v3 % 2, 31))
            v3 = bor(rshift(v3, 1), lshift(v2 % 2, 31))
            v2 = bor(rshift(v2, 1), lshift(v1 % 2, 31))
            v1 = rshift(v1, 1)
            if lsb == 1 then v1 = bxor(v1, 0xe1000000) end
        end
    end
    return pack_be32(z1) .. pack_be32(z2) .. pack_be32(z3) .. pack_be32(z4)
end
M.gf_mul = gf_mul

-- H * x^i for i = 0..127 in GHASH's bit order (what gf_mul walks through bit by bit)
local function gf_table(h)
    local v1, v2, v3, v4 = be32(h, 1), be32(h, 5), be32(h, 9), be32(h, 13)
    local tbl = {}
    for i = 0, 127 do
        tbl[i] = { v1, v2, v3, v4 }
        local lsb = v4 % 2
        v4 = bor(rshift(v4, 1), lshift(v3 % 2, 31))
        v3 = bor(rshift(v3, 1), lshift(v2 % 2, 31))
        v2 = bor(rshift(v2, 1), lshift(v1 % 2, 31))
        v1 = rshift(v1, 1)
        if lsb == 1 then v1 = bxor(v1, 0xe1000000) end
    end
    return tbl
end

local function gf_mul_table(x, tbl)
    local z1, z2, z3, z4 = 0, 0, 0, 0
    for i = 1, 16 do
        local byte = sbyte(x, i)
        if byte ~= 0 then
            for bitpos = 7, 0, -1 do
                if floor(byte / 2 ^ bitpos) % 2 == 1 then
                    local v = tbl[(i - 1) * 8 + 7 - bitpos]
                    z1, z2, z3, z4 = bxor(z1, v[1]), bxor(z2, v[2]), bxor(z3, v[3]), bxor(z4, v[4])
                end
            end
        end
    end
    return pack_be32(z1) .. pack_be32(z2) .. pack_be32(z3) .. pack_be32(z4)
end
M.gf_table, M.gf_mul_table = gf_table, gf_mul_table

local function pad16(s)
    local rem = #s % 16
    return rem == 0 and "" or srep("\0", 16 - rem)
end

-- luaossl has no call for associated data, so both AEADs are opened by authenticating
-- Z = pad16(aad) || ciphertext as if it were the ciphertext of a message without
-- associated data (OpenSSL computes that tag in C), then correcting for the one block
-- that differs: the lengths block. Both MACs are polynomials in one key (H, r), and the
-- blocks of Z are exactly the AEAD's blocks of aad and ciphertext.
local aead_open
do
    local AD_CACHE, ad_cached = {}, 0

    -- AES-GCM (NIST SP 800-38D): GHASH is linear, so tag = tag_Z xor (L_Z xor L) * H.
    local function gcm_open(key, nonce, aad, ct, tag)
        local bits = (#key == 16) and "128" or "256"
        local ctr = "aes-" .. bits .. "-ctr"
        local iv = nonce .. "\0\0\0\2"
        local z = aad .. pad16(aad) .. ct
        local enc = ossl.cipher.new("aes-" .. bits .. "-gcm")
        enc:encrypt(key, nonce)
        enc:update(cipher_run(ctr, false, key, iv, z)) -- the plaintext whose ciphertext is z
        enc:final()
        local tz = enc:getTag(16)
        -- D * H for the sparse D = L_Z xor L: the XOR of H * x^i over D's set bits, from
        -- a table of the 128 multiples made once per key
        local tbl = AD_CACHE[key]
        if not tbl then
            tbl = gf_table(cipher_run("aes-" .. bits .. "-ecb", true, key, nil, srep("\0", 16)))
            if ad_cached > 512 then AD_CACHE, ad_cached = {}, 0 end
            AD_CACHE[key], ad_cached = tbl, ad_cached + 1
        end
        local fix = gf_mul_table(xor16(pack_be64(0) .. pack_be64(#z * 8),
                                       pack_be64(#aad * 8) .. pack_be64(#ct * 8)), tbl)
        if xor16(tz, fix) ~= tag then return nil end
        return cipher_run(ctr, false, key, iv, ct)
    end

    -- ChaCha20-Poly1305 (RFC 8439): the Poly1305 accumulator before its last block is the
    -- same for Z and the AEAD's input, so P = P_Z + (L - L_Z) * r (mod 2^130 - 5). OpenSSL
    -- gives tag_Z = (P_Z + s) mod 2^128 only; P_Z < 2^130 - 5 leaves at most five
    -- candidates, each checked.
    local P1305, TWO128
    local function le_bn(s) return ossl.bignum.fromBinary(string.reverse(s)) end

    local function chacha_open(key, nonce, aad, ct, tag)
        local bn = ossl.bignum
        if not P1305 then
            P1305 = bn.fromBinary("\3" .. srep("\255", 15) .. "\251")
            TWO128 = bn.fromBinary("\1" .. srep("\0", 16))
        end
        local iv1 = "\1\0\0\0" .. nonce
        local z = aad .. pad16(aad) .. ct
        local enc = ossl.cipher.new("chacha20-poly1305")
        enc:encrypt(key, nonce)
        enc:update(cipher_run("chacha20", false, key, iv1, z))
        enc:final()
        local tz = enc:getTag(16)
        local otk = cipher_run("chacha20", true, key, "\0\0\0\0" .. nonce, srep("\0", 32))
        local rb = { sbyte(otk, 1, 16) }
        for _, i in ipairs({ 4, 8, 12, 16 }) do rb[i] = rb[i] % 16 end
        for _, i in ipairs({ 5, 9, 13 }) do rb[i] = rb[i] - rb[i] % 4 end
        local r = le_bn(schar(table_unpack(rb)))
        local s = le_bn(ssub(otk, 17, 32))
        local delta = (le_bn(pack_le64(#aad) .. pack_le64(#ct)) - le_bn(pack_le64(0) .. pack_le64(#z))) * r
        local want = le_bn(tag)
        local base = le_bn(tz) - s
        for k = 0, 4 do
            local pz = base + TWO128 * bn.new(k)
            if not (pz < bn.new(0)) and pz < P1305 then
                if ((pz + delta) % P1305 + s) % TWO128 == want then
                    return cipher_run("chacha20", false, key, iv1, ct)
                end
            end
        end
        return nil
    end

    -- body = ciphertext || 16-byte tag. Returns the plaintext, or nil when it does not verify.
    function aead_open(aead, key, nonce, aad, body)
        if #body < 16 then return nil end
        local ct, tag = ssub(body, 1, #body - 16), ssub(body, #body - 15)
        if aead == 0x10 then return chacha_open(key, nonce, aad, ct, tag) end
        if aead == 0x01 or aead == 0x02 then return gcm_open(key, nonce, aad, ct, tag) end
        return nil
    end
    M.aead_open = aead_open
end

-- N = frame_ID XOR NR, frame_ID = 4 zero bytes || offset as u64 (RFC 8548 §3.6, §4.2.3)
local function frame_nonce(nr, offset)
    local id = "\0\0\0\0" .. pack_be64(offset)
    local out = {}
    for i = 1, 12 do out[i] = schar(bxor(sbyte(id, i), sbyte(nr, i))) end
    return table.concat(out)
end
M.frame_nonce = frame_nonce

-- traffic key K || NR of generation j from mk[j] (§3.3): A->B with CONST_KEY_A
local function traffic_key(mk, aead, ab)
    return cprf(mk, ab and C_KEY_A or C_KEY_B, AEAD_KEYLEN[aead] + NR_LEN)
end
M.traffic_key = traffic_key

-- ------------------------------------------------------------------ ECDH (RFC 8548 §5)
-- X25519 and X448 by RFC 7748's Montgomery ladder; P-256 and P-521 (a = -3) by
-- double-and-add in Jacobian coordinates, with point decompression and validation. All
-- on luaossl's bignum (BN_mod_* in C); run once per connection, so simple beats fast.
-- Nothing here needs to be constant-time: the analyzer only reads logged keys.
local validate_public, public_of, shared_secret, x_mont
do
    local EC = {}

    local function bn_hex(h) return ossl.bignum.fromBinary(fromhex(h)) end

    local function bn_bytes_be(x, len)
        local b = x:toBinary()
        if #b > len then return nil end
        return srep("\0", len - #b) .. b
    end

    local function ec_params()
        if EC.ready then return EC end
        local bn = ossl.bignum
        local p25519 = bn.new(2) ^ bn.new(255) - bn.new(19)
        local p448 = bn.new(2) ^ bn.new(448) - bn.new(2) ^ bn.new(224) - bn.new(1)
        EC.mont = {
            [0x23] = { p = p25519, a24 = bn.new(121665), bits = 255, len = 32, name = "X25519" },
            [0x24] = { p = p448, a24 = bn.new(39081), bits = 448, len = 56, name = "X448" },
        }
        EC.nist = {
            [0x21] = { name = "P-256", len = 32,
                p = bn_hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
                b = bn_hex("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
                n = bn_hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"),
                gx = bn_hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
                gy = bn_hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5") },
            [0x22] = { name = "P-521", len = 66,
                p = bn.new(2) ^ bn.new(521) - bn.new(1),
                b = bn_hex("0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e1" ..
                           "56193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00"),
                n = bn_hex("01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" ..
                           "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409"),
                gx = bn_hex("00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3d" ..
                            "baa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66"),
                gy = bn_hex("011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e66" ..
                            "2c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650") },
        }
        for _, c in pairs(EC.nist) do
            c.sqrt_exp = (c.p + bn.new(1)) / bn.new(4) -- p = 3 (mod 4) for both curves
            c.inv_exp = c.p - bn.new(2)
        end
        EC.ready = true
        return EC
    end

    -- RFC 7748 §5: decodeScalar and the ladder; u is read little-endian (X25519 masks bit 255)
    function x_mont(tep, scalar, ucoord)
        local c = ec_params().mont[tep]
        local bn = ossl.bignum
        local p, len = c.p, c.len
        if #scalar ~= len or #ucoord ~= len then return nil end
        local k = { sbyte(scalar, 1, len) }
        local ub = { sbyte(ucoord, 1, len) }
        if tep == 0x23 then
            k[1] = k[1] - k[1] % 8
            k[32] = k[32] % 128 + 64 - (floor(k[32] / 64) % 2) * 64
            ub[32] = ub[32] % 128
        else
            k[1] = k[1] - k[1] % 4
            k[56] = k[56] % 128 + 128
        end
        local x1 = bn.fromBinary(string.reverse(schar(table_unpack(ub)))) % p
        local x2, z2, x3, z3 = bn.new(1), bn.new(0), x1, bn.new(1)
        local swap = 0
        for t = c.bits - 1, 0, -1 do
            local kt = floor(k[floor(t / 8) + 1] / 2 ^ (t % 8)) % 2
            if swap ~= kt then x2, x3, z2, z3 = x3, x2, z3, z2 end
            swap = kt
            local a = x2:mod_add(z2, p)
            local aa = a:mod_sqr(p)
            local b = x2:mod_sub(z2, p)
            local bb = b:mod_sqr(p)
            local e = aa:mod_sub(bb, p)
            local cc = x3:mod_add(z3, p)
            local d = x3:mod_sub(z3, p)
            local da = d:mod_mul(a, p)
            local cb = cc:mod_mul(b, p)
            x3 = da:mod_add(cb, p):mod_sqr(p)
            z3 = x1:mod_mul(da:mod_sub(cb, p):mod_sqr(p), p)
            x2 = aa:mod_mul(bb, p)
            z2 = e:mod_mul(aa:mod_add(c.a24:mod_mul(e, p), p), p)
        end
        if swap == 1 then x2, z2 = x3, z3 end
        local out = x2:mod_mul(z2:mod_exp(p - bn.new(2), p), p)
        return string.reverse(bn_bytes_be(out, len))
    end
    M.x_mont = x_mont

    -- NIST curves: points are { x, y, z } Jacobian, nil is the point at infinity
    local function jac_double(c, q)
        if q == nil then return nil end
        local p = c.p
        local x1, y1, z1 = q[1], q[2], q[3]
        if y1 == ossl.bignum.new(0) then return nil end
        local delta = z1:mod_sqr(p)
        local gamma = y1:mod_sqr(p)
        local beta = x1:mod_mul(gamma, p)
        local alpha = x1:mod_sub(delta, p):mod_mul(x1:mod_add(delta, p), p)
        alpha = alpha:mod_add(alpha, p):mod_add(alpha, p)
        local beta4 = beta:mod_add(beta, p)
        beta4 = beta4:mod_add(beta4, p)
        local x3 = alpha:mod_sqr(p):mod_sub(beta4:mod_add(beta4, p), p)
        local z3 = y1:mod_add(z1, p):mod_sqr(p):mod_sub(gamma, p):mod_sub(delta, p)
        local g2 = gamma:mod_sqr(p)
        local g8 = g2:mod_add(g2, p)
        g8 = g8:mod_add(g8, p)
        g8 = g8:mod_add(g8, p)
        local y3 = alpha:mod_mul(beta4:mod_sub(x3, p), p):mod_sub(g8, p)
        return { x3, y3, z3 }
    end

    local function jac_add(c, q1, q2)
        if q1 == nil then return q2 end
        if q2 == nil then return q1 end
        local p = c.p
        local z1z1, z2z2 = q1[3]:mod_sqr(p), q2[3]:mod_sqr(p)
        local u1, u2 = q1[1]:mod_mul(z2z2, p), q2[1]:mod_mul(z1z1, p)
        local s1 = q1[2]:mod_mul(q2[3], p):mod_mul(z2z2, p)
        local s2 = q2[2]:mod_mul(q1[3], p):mod_mul(z1z1, p)
        if u1 == u2 then
            if s1 == s2 then return jac_double(c, q1) end
            return nil
        end
        local h = u2:mod_sub(u1, p)
        local i = h:mod_add(h, p):mod_sqr(p)
        local j = h:mod_mul(i, p)
        local r = s2:mod_sub(s1, p)
        r = r:mod_add(r, p)
        local v = u1:mod_mul(i, p)
        local x3 = r:mod_sqr(p):mod_sub(j, p):mod_sub(v:mod_add(v, p), p)
        local s1j = s1:mod_mul(j, p)
        local y3 = r:mod_mul(v:mod_sub(x3, p), p):mod_sub(s1j:mod_add(s1j, p), p)
        local z3 = q1[3]:mod_add(q2[3], p):mod_sqr(p):mod_sub(z1z1, p):mod_sub(z2z2, p):mod_mul(h, p)
        return { x3, y3, z3 }
    end

    -- k * (x, y) for a big-endian scalar string k; the affine x and y, or nil (infinity)
    local function nist_mul(c, k, x, y)
        local bn = ossl.bignum
        local base = { x, y, bn.new(1) }
        local acc = nil
        for i = 1, #k do
            local byte = sbyte(k, i)
            for bit = 7, 0, -1 do
                acc = jac_double(c, acc)
                if floor(byte / 2 ^ bit) % 2 == 1 then acc = jac_add(c, acc, base) end
            end
        end
        if acc == nil then return nil end
        local zinv = acc[3]:mod_exp(c.inv_exp, c.p)
        local zinv2 = zinv:mod_sqr(c.p)
        return acc[1]:mod_mul(zinv2, c.p), acc[2]:mod_mul(zinv2:mod_mul(zinv, c.p), c.p)
    end

    -- a NIST point (02/03 || X or 04 || X || Y, no length prefix) -> x, y; or nil, why
    local function nist_decode(tep, point)
        local c = ec_params().nist[tep]
        local bn = ossl.bignum
        local n = #point
        local first = sbyte(point, 1)
        local x, y
        if n == 1 + c.len and (first == 2 or first == 3) then
            x = bn.fromBinary(ssub(point, 2))
        elseif n == 1 + 2 * c.len and first == 4 then
            x, y = bn.fromBinary(ssub(point, 2, 1 + c.len)), bn.fromBinary(ssub(point, 2 + c.len))
        else
            return nil, "not a " .. c.name .. " point encoding (" .. istr(n) .. " bytes)"
        end
        local p = c.p
        if not (x < p) or (y and not (y < p)) then return nil, "a coordinate is not below the field prime" end
        local rhs = x:mod_sqr(p):mod_mul(x, p):mod_sub(x:mod_add(x, p):mod_add(x, p), p):mod_add(c.b, p)
        if y then
            if y:mod_sqr(p) ~= rhs then return nil, "the point is not on the curve" end
            return x, y
        end
        y = rhs:mod_exp(c.sqrt_exp, p)
        if y:mod_sqr(p) ~= rhs then return nil, "no point on the curve has this x-coordinate" end
        local odd = sbyte(bn_bytes_be(y, c.len), c.len) % 2
        if odd ~= first - 2 then y = p - y end
        if y == p then y = bn.new(0) end
        return x, y
    end

    local function nist_encode(c, x, y, compressed)
        local xb, yb = bn_bytes_be(x, c.len), bn_bytes_be(y, c.len)
        if compressed then return schar(2 + sbyte(yb, c.len) % 2) .. xb end
        return "\4" .. xb .. yb
    end

    -- Every encoding of the X25519/X448 points of small order (RFC 7748 §6, §7), as the
    -- Python side lists them: the shared secret with them is all-zero.
    local SMALL_ORDER = nil
    local function small_order(tep)
        if not SMALL_ORDER then
            local bn = ossl.bignum
            local params = ec_params().mont
            SMALL_ORDER = { [0x23] = {}, [0x24] = {} }
            local p = params[0x23].p
            local two255 = bn.new(2) ^ bn.new(255)
            local us = { bn.new(0), bn.new(1),
                bn.fromBinary(fromhex("00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0")),
                bn.fromBinary(fromhex("57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f")),
                p - bn.new(1) }
            for _, u in ipairs(us) do
                for _, v in ipairs({ u, u + p }) do
                    if v < two255 then
                        for _, top in ipairs({ bn.new(0), two255 }) do
                            SMALL_ORDER[0x23][string.reverse(bn_bytes_be(v + top, 32))] = true
                        end
                    end
                end
            end
            local q = params[0x24].p
            local two448 = bn.new(2) ^ bn.new(448)
            for _, u in ipairs({ bn.new(0), bn.new(1), q - bn.new(1) }) do
                for _, v in ipairs({ u, u + q }) do
                    if v < two448 then SMALL_ORDER[0x24][string.reverse(bn_bytes_be(v, 56))] = true end
                end
            end
        end
        return SMALL_ORDER[tep]
    end

    -- Why a received public key is unusable (RFC 8548 §5), or nil. Needs luaossl.
    function validate_public(tep, point)
        if not ossl.ok then return nil end
        local info = TEPS[tep or 0]
        if not info then return nil end
        if not info.prefix then
            if small_order(tep)[point] then return "a small-order point: every shared secret with it is all-zero" end
            if #point ~= info.point then return istr(#point) .. " bytes, expected " .. istr(info.point) end
            return nil
        end
        local x, why = nist_decode(tep, point)
        if not x then return "not a valid " .. info.name .. " public key: " .. why end
        return nil
    end
    M.validate_public = validate_public

    -- The public key of a logged private key, in both encodings (X25519/X448: one)
    function public_of(tep, private)
        if tep == 0x23 or tep == 0x24 then
            local len = ec_params().mont[tep].len
            if #private ~= len then return nil, "the private key is " .. istr(#private) .. " bytes, expected " .. istr(len) end
            local base = (tep == 0x23) and ("\9" .. srep("\0", 31)) or ("\5" .. srep("\0", 55))
            local pub = x_mont(tep, private, base)
            return pub, pub
        end
        local c = ec_params().nist[tep]
        if #private ~= c.len then return nil, "the private key is " .. istr(#private) .. " bytes, expected " .. istr(c.len) end
        local d = ossl.bignum.fromBinary(private)
        if d == ossl.bignum.new(0) or not (d < c.n) then return nil, "private scalar out of range for its curve" end
        local x, y = nist_mul(c, private, c.gx, c.gy)
        return nist_encode(c, x, y, true), nist_encode(c, x, y, false)
    end
    M.public_of = public_of

    -- ES (RFC 8548 §5): X25519/X448, or the x-coordinate of d * Q (ECSVDP-DH); nil, why
    function shared_secret(tep, private, peer)
        if not ossl.ok then return nil, "lua-luaossl is not available" end
        local info = TEPS[tep or 0]
        if not info then return nil, sfmt("TEP 0x%02x is not a tcpcrypt TEP", tep or 0) end
        local es
        if tep == 0x23 or tep == 0x24 then
            local len = ec_params().mont[tep].len
            if #private ~= len then return nil, "the private key is " .. istr(#private) .. " bytes, expected " .. istr(len) end
            if #peer ~= len then return nil, "the peer's key is " .. istr(#peer) .. " bytes, expected " .. istr(len) end
            es = x_mont(tep, private, peer)
        else
            local c = ec_params().nist[tep]
            if #private ~= c.len then return nil, "the private key is " .. istr(#private) .. " bytes, expected " .. istr(c.len) end
            local d = ossl.bignum.fromBinary(private)
            if d == ossl.bignum.new(0) or not (d < c.n) then return nil, "private scalar out of range for its curve" end
            local x, y = nist_decode(tep, peer)
            if not x then return nil, "not a valid " .. c.name .. " public key: " .. y end
            local sx = nist_mul(c, private, x, y)
            if not sx then return nil, "the shared point is the point at infinity" end
            es = bn_bytes_be(sx, c.len)
        end
        if not string.find(es, "[^%z]") then return nil, "all-zero shared secret" end
        return es
    end
    M.shared_secret = shared_secret
end

-- ------------------------------------------------------------------ key log (digest §3)
-- One entry per line, LABEL <hex> ...; '#' comments; malformed lines are skipped with a
-- warning naming the line; every valid line is used. <id> is N_A (32 bytes) or the
-- 18-byte resume[i] of a resumed session.
local KEYLOG = {
    secrets = {},     -- id -> ss
    masters = {},     -- id -> mk[0]
    traffic = {},     -- id -> { k_ab[0], k_ba[0] } (each K || NR)
    privates = {},    -- canonical public key -> private key
    path = nil, size = -1, lines = 0, generation = 0, unknown = 0,
    errors = {},      -- messages of skipped lines
    pending_errors = {},
}

-- the key a public key is matched on: NIST points compressed (02/03 || X), others as is
local function canonical_public(point)
    local n = #point
    if (n == 65 or n == 133) and sbyte(point, 1) == 4 then
        local coord = floor((n - 1) / 2)
        local ylast = sbyte(point, n)
        return schar(2 + ylast % 2) .. ssub(point, 2, 1 + coord)
    end
    return point
end
M.canonical_public = canonical_public

local ID_LENS = { [32] = true, [18] = true }
local PUB_LENS = { [32] = true, [33] = true, [56] = true, [65] = true, [67] = true, [133] = true }
local PRIV_LENS = { [32] = true, [56] = true, [66] = true }
local TK_LENS = { [28] = true, [44] = true }
local KEYLOG_SPECS = {
    TCPCRYPT_EPHEMERAL_PRIVATE = { { "public key", PUB_LENS }, { "private key", PRIV_LENS } },
    TCPCRYPT_SESSION_SECRET = { { "id", ID_LENS }, { "session secret", { [32] = true } } },
    TCPCRYPT_MASTER_KEY = { { "id", ID_LENS }, { "master key", { [32] = true } } },
    TCPCRYPT_TRAFFIC_KEYS = { { "id", ID_LENS }, { "k_ab", TK_LENS }, { "k_ba", TK_LENS } },
}

local function lens_text(set)
    local l = {}
    for n in pairs(set) do l[#l + 1] = n end
    table.sort(l)
    local t = {}
    for i, n in ipairs(l) do t[i] = istr(n) end
    return table.concat(t, " or ")
end

-- one line -> label, values; or nil, why (nil, nil for comments, blanks, unknown labels)
local function parse_keylog_line(line)
    line = string.match(line, "^%s*(.-)%s*$")
    if line == "" or ssub(line, 1, 1) == "#" then return nil, nil end
    local parts = {}
    for w in string.gmatch(line, "%S+") do parts[#parts + 1] = w end
    local label = parts[1]
    local spec = KEYLOG_SPECS[label]
    if not spec then
        KEYLOG.unknown = KEYLOG.unknown + 1
        return nil, nil
    end
    if #parts - 1 ~= #spec then
        local names = {}
        for i, s in ipairs(spec) do names[i] = "<" .. s[1] .. ">" end
        return nil, label .. " takes " .. istr(#spec) .. " fields (" .. table.concat(names, " ") ..
            "), got " .. istr(#parts - 1)
    end
    local values = {}
    for i, s in ipairs(spec) do
        local text = parts[i + 1]
        local raw = fromhex(text)
        if not raw then
            local bad = string.find(text, "[^0-9a-fA-F]")
            return nil, label .. " field " .. istr(i + 1) .. " (" .. s[1] .. "): " ..
                (bad and ("character " .. istr(bad) .. " is not a hex digit") or
                 ("odd number of hex digits (" .. istr(#text) .. ")"))
        end
        if not s[2][#raw] then
            return nil, label .. " field " .. istr(i + 1) .. " (" .. s[1] .. ") is " .. istr(#raw) ..
                " bytes, expected " .. lens_text(s[2])
        end
        values[i] = raw
    end
    if label == "TCPCRYPT_TRAFFIC_KEYS" and #values[2] ~= #values[3] then
        return nil, label .. " k_ab and k_ba differ in length"
    end
    return label, values
end

local function keylog_store(label, values)
    if label == "TCPCRYPT_SESSION_SECRET" then
        KEYLOG.secrets[values[1]] = values[2]
    elseif label == "TCPCRYPT_MASTER_KEY" then
        KEYLOG.masters[values[1]] = values[2]
    elseif label == "TCPCRYPT_TRAFFIC_KEYS" then
        KEYLOG.traffic[values[1]] = { values[2], values[3] }
    elseif label == "TCPCRYPT_EPHEMERAL_PRIVATE" then
        KEYLOG.privates[canonical_public(values[1])] = values[2]
    end
end

-- first_line: lines of the same file already read (nil: the key-log file's count, which
-- then grows); returns the number of lines read
local function parse_keylog_text(text, name, first_line)
    local lineno = 0
    local base = first_line or KEYLOG.lines
    for line in string.gmatch(text .. "\n", "([^\r\n]*)\r?\n") do
        lineno = lineno + 1
        local label, values = parse_keylog_line(line)
        if label then
            keylog_store(label, values)
        elseif values then
            local msg = (name or KEYLOG.path or "key log") .. ":" .. istr(base + lineno) ..
                ": " .. values .. "; line skipped"
            if #KEYLOG.errors < 100 then
                KEYLOG.errors[#KEYLOG.errors + 1] = msg
                KEYLOG.pending_errors[#KEYLOG.pending_errors + 1] = msg
            end
        end
    end
    if not first_line then KEYLOG.lines = KEYLOG.lines + lineno - 1 end
    return lineno - 1
end
M.parse_keylog_text = parse_keylog_text
M.KEYLOG = KEYLOG

local keylog_pref_path = ""

local function keylog_path()
    if keylog_pref_path and keylog_pref_path ~= "" then return keylog_pref_path end
    local env = os.getenv("TCPCRYPT_KEYLOGFILE")
    if env and env ~= "" then return env end
    return nil
end

-- key logs embedded in the capture (pcapng Decryption Secrets Blocks), in file order
local EMBEDDED = { texts = {}, name = "Decryption Secrets Block" }

local function keylog_reset()
    KEYLOG.secrets, KEYLOG.masters, KEYLOG.traffic, KEYLOG.privates = {}, {}, {}, {}
    KEYLOG.size, KEYLOG.lines, KEYLOG.unknown, KEYLOG.errors, KEYLOG.pending_errors = -1, 0, 0, {}, {}
    KEYLOG.generation = KEYLOG.generation + 1
    for i, text in ipairs(EMBEDDED.texts) do
        parse_keylog_text(text, EMBEDDED.name .. " " .. istr(i), 0)
    end
end

local function keylog_empty()
    return next(KEYLOG.secrets) == nil and next(KEYLOG.masters) == nil and
        next(KEYLOG.traffic) == nil and next(KEYLOG.privates) == nil
end

-- Read the key log again when its path changed or the file grew (new lines appended).
local function keylog_refresh()
    local path = keylog_path()
    if path ~= KEYLOG.path then
        keylog_reset()
        KEYLOG.path = path
    end
    if not path then return end
    local f = io.open(path, "rb")
    if not f then return end
    local size = f:seek("end") or 0
    if size < KEYLOG.size then
        keylog_reset() -- truncated or replaced: start over
    end
    if size > KEYLOG.size then
        local start = KEYLOG.size > 0 and KEYLOG.size or 0
        f:seek("set", start)
        local text = f:read("*a") or ""
        -- only complete lines; a partly written last line waits for the next refresh
        local last_nl = nil
        for i = #text, 1, -1 do
            local c = sbyte(text, i)
            if c == 10 or c == 13 then last_nl = i break end
        end
        if last_nl then
            parse_keylog_text(ssub(text, 1, last_nl), path)
            KEYLOG.size = start + last_nl
            KEYLOG.generation = KEYLOG.generation + 1
        end
        -- a last line without its line break: taken once it is a whole valid entry (a line
        -- still being written fails its length checks and waits for the next refresh)
        local tail = ssub(text, (last_nl or 0) + 1)
        if string.find(tail, "%S") then
            local unknown = KEYLOG.unknown
            local label, values = parse_keylog_line(tail)
            KEYLOG.unknown = unknown
            if label then
                keylog_store(label, values)
                KEYLOG.size = start + #text
                KEYLOG.lines = KEYLOG.lines + 1
                KEYLOG.generation = KEYLOG.generation + 1
            end
        end
    end
    f:close()
end

-- ------------------------------------------------------------------ key logs embedded in pcapng
-- Wireshark gives the Decryption Secrets Blocks of a pcapng file to the protocols it
-- knows (TLS, WireGuard, ...), not to Lua, so the plugin reads the capture file itself
-- when it can tell which file that is: the -r argument (or, for Wireshark, the file
-- named last) on the command line (/proc/self/cmdline: Linux). It follows the file block
-- by block alongside the first pass, so a block counts from the packet after it, as in
-- a single-pass reader, and uses nothing until the file's first packet has the bytes of
-- the first packet being dissected. Otherwise the first tcpcrypt packet without keys
-- says how to get embedded keys out (tcpinc-analyze extract-secrets).
-- the process's arguments (Linux), or nil
local function read_cmdline()
    local f = io.open("/proc/self/cmdline", "rb")
    if not f then return nil end
    local raw = f:read("*a") or ""
    f:close()
    local args = {}
    for a in string.gmatch(raw, "([^%z]*)%z") do args[#args + 1] = a end
    return args
end

-- Whether a packet can be dissected again (Wireshark's GUI, tshark -2): then each packet
-- keeps what it shows. tshark in one pass shows each packet once, so it keeps nothing
-- and memory stays flat. "-2" is looked for in the arguments; when they cannot be read,
-- or an option cluster might hide it, records are kept.
local KEEP_RECORDS = true
do
    local args = not in_gui_process and read_cmdline()
    if args and string.find(args[1] or "", "tshark", 1, true) then
        KEEP_RECORDS = false
        for i = 2, #args do
            local a = args[i]
            if ssub(a, 1, 1) == "-" and ssub(a, 1, 2) ~= "--" and string.find(a, "2", 1, true) then
                KEEP_RECORDS = true
            end
        end
    end
end

local SCAN, scan_open, scan_until
do
    local DSB_BLOCK, DSB_TCPC = 0x0000000A, 0x54435043
    SCAN = { state = "new" }


    -- the capture's path, "-" for standard input, or nil (live capture, or not known)
    local function capture_path(args)
        local file, live = nil, false
        local i = 2
        while i <= #args do
            local a = args[i]
            if a == "-r" or a == "--read-file" then
                file = args[i + 1]
                i = i + 1
            elseif ssub(a, 1, 2) == "-r" then
                file = ssub(a, 3)
            elseif ssub(a, 1, 12) == "--read-file=" then
                file = ssub(a, 13)
            elseif a == "-i" or ssub(a, 1, 2) == "-i" or ssub(a, 1, 11) == "--interface" then
                live = true
            end
            i = i + 1
        end
        if not file and in_gui_process and #args >= 2 and ssub(args[#args], 1, 1) ~= "-" then
            file = args[#args]
        end
        return file, live
    end

    local function scan_u32(s, i, le)
        local a, b, c, d = sbyte(s, i, i + 3)
        if le then a, b, c, d = d, c, b, a end
        return ((a * 256 + b) * 256 + c) * 256 + d
    end

    -- state: "new" -> "reading" (pcapng, verifying) -> "verified" | "done"; "none" (no file:
    -- live capture), "off" (not pcapng: no secrets blocks), "unreadable" (stdin, compressed,
    -- unknown file, or a file that is not the capture being dissected)
    function scan_open()
        SCAN = { state = "none", packets = 0, pending = {} }
        local args = read_cmdline()
        if not args then
            SCAN.state = in_gui_process and "unreadable" or "none"
            SCAN.why = "the command line cannot be read here"
            return
        end
        local path, live = capture_path(args)
        if not path then
            if in_gui_process and not live then
                SCAN.state, SCAN.why = "unreadable", "the plugin cannot tell which file Wireshark opened"
            end
            return
        end
        SCAN.path = path
        if path == "-" then
            SCAN.state, SCAN.why = "unreadable", "the capture is read from standard input"
            return
        end
        local f = io.open(path, "rb")
        if not f then
            SCAN.state, SCAN.why = "unreadable", "cannot open " .. (string.match(path, "[^/\\]+$") or path)
            return
        end
        local head = f:read(12) or ""
        if #head >= 4 and be32(head, 1) == 0x0A0D0D0A and #head >= 12 then
            local bom = ssub(head, 9, 12)
            SCAN.le = bom == "\77\60\43\26"
            if not SCAN.le and bom ~= "\26\43\60\77" then
                f:close()
                SCAN.state, SCAN.why = "unreadable", "unknown pcapng byte order"
                return
            end
            SCAN.file, SCAN.pos, SCAN.state, SCAN.buf, SCAN.buf_at = f, 0, "reading", nil, 0
            return
        end
        f:close()
        if sbyte(head, 1) == 0x1f and sbyte(head, 2) == 0x8b then
            SCAN.state, SCAN.why = "unreadable", "the file is compressed"
        elseif #head >= 4 and be32(head, 1) == 0x0A0D0D0A then
            SCAN.state, SCAN.why = "unreadable", "the file is too short"
        else
            SCAN.state = "off"
        end
    end

    local function scan_close(state, why)
        if SCAN.file then pcall(function() SCAN.file:close() end) end
        SCAN.file, SCAN.buf = nil, nil
        SCAN.state, SCAN.why = state, why or SCAN.why
    end

    local function scan_use(text)
        EMBEDDED.texts[#EMBEDDED.texts + 1] = text
        parse_keylog_text(text, EMBEDDED.name .. " " .. istr(#EMBEDDED.texts) .. " of " .. SCAN.path, 0)
        KEYLOG.generation = KEYLOG.generation + 1
    end

    -- Read blocks up to and including the number-th packet block. first_bytes: the
    -- dissected packet 1 (checked against the file's first packet).
    -- bytes at a file offset, through a 64 KiB read-ahead (blocks are met in order)
    local function scan_read(pos, n)
        local b, at = SCAN.buf, SCAN.buf_at
        if b and pos >= at and pos + n <= at + #b then return ssub(b, pos - at + 1, pos - at + n) end
        SCAN.file:seek("set", pos)
        b = SCAN.file:read(math.max(n, 65536)) or ""
        SCAN.buf, SCAN.buf_at = b, pos
        return ssub(b, 1, n)
    end

    function scan_until(number, first_bytes)
        if SCAN.state ~= "reading" and SCAN.state ~= "verified" then return end
        local guard = 0
        while SCAN.packets < number and guard < 100000 do
            guard = guard + 1
            local head = scan_read(SCAN.pos, 12)
            if #head < 12 then return scan_close("done") end
            local btype = be32(head, 1)
            if btype == 0x0A0D0D0A then
                local bom = ssub(head, 9, 12)
                SCAN.le = bom == "\77\60\43\26"
            end
            local le = SCAN.le
            local btype_le = scan_u32(head, 1, le)
            local blen = scan_u32(head, 5, le)
            if btype == 0x0A0D0D0A then btype_le = 0x0A0D0D0A end
            if blen < 12 or blen % 4 ~= 0 then return scan_close("done") end
            if btype_le == DSB_BLOCK then
                -- type, length, then the body: secrets type, secrets length, data; padding
                local rest = scan_read(SCAN.pos + 12, blen - 16)
                local stype = scan_u32(head, 9, le)
                local slen = #rest >= 4 and scan_u32(rest, 1, le) or -1
                if stype == DSB_TCPC and slen >= 0 and 4 + slen <= #rest then
                    local text = ssub(rest, 5, 4 + slen)
                    if SCAN.state == "verified" then scan_use(text) else SCAN.pending[#SCAN.pending + 1] = text end
                end
            elseif btype_le == 6 or btype_le == 3 or btype_le == 2 then
                SCAN.packets = SCAN.packets + 1
                if SCAN.packets == 1 then
                    -- enhanced/obsolete packet block: captured length at 20, data at 28;
                    -- simple packet block: original length at 8, data at 12
                    local off, caplen
                    if btype_le == 3 then
                        off, caplen = 12, math.min(scan_u32(head, 9, le), blen - 16)
                    else
                        local hdr = scan_read(SCAN.pos + 12, 16)
                        if #hdr == 16 then off, caplen = 28, scan_u32(hdr, 9, le) end
                    end
                    local same = false
                    if off and first_bytes then
                        local want = math.min(#first_bytes, 64)
                        same = caplen == #first_bytes and scan_read(SCAN.pos + off, want) == ssub(first_bytes, 1, want)
                    end
                    if not same then
                        return scan_close("unreadable", "the file on the command line is not the one being dissected")
                    end
                    SCAN.state = "verified"
                    for _, text in ipairs(SCAN.pending) do scan_use(text) end
                    SCAN.pending = {}
                end
            end
            SCAN.pos = SCAN.pos + blen
        end
    end
    M.capture_path = capture_path
end

-- ------------------------------------------------------------------ ENO codec (RFC 8547)
-- SYN-form contents -> suboptions, findings ({code, message}), malformed (§4.1, §4.4).
-- Offsets (off, data_off) are relative to the option's kind byte when base is 2 or 4.
local function parse_suboptions(contents, base)
    local subs, findings, globals = {}, {}, 0
    local pos, n = 1, #contents
    while pos <= n do
        local byte = sbyte(contents, pos)
        if byte < 0x80 then
            if byte <= 0x1f then
                globals = globals + 1
                if globals > 1 then
                    findings[#findings + 1] = { "eno-global-repeated", sfmt("a second global suboption 0x%02x: a SYN must carry at most one; receivers ignore all but the first", byte) }
                elseif floor(byte / 4) % 8 ~= 0 then
                    findings[#findings + 1] = { "eno-global-reserved", sfmt("global suboption 0x%02x sets reserved z bits (must be sent as zero, ignored on receipt)", byte) }
                end
                subs[#subs + 1] = { kind = "global", byte = byte, off = base + pos - 1, len = 1, first = globals == 1 }
            else
                subs[#subs + 1] = { kind = "tep", tep = byte, byte = byte, v = false, off = base + pos - 1, len = 1, tep_off = base + pos - 1 }
            end
            pos = pos + 1
        else
            local glt = byte - 0x80
            if glt > 0x1f then
                subs[#subs + 1] = { kind = "tep", tep = glt, byte = byte, v = true, data = ssub(contents, pos + 1),
                                    off = base + pos - 1, len = n - pos + 1, tep_off = base + pos - 1, data_off = base + pos }
                pos = n + 1
            else
                local data_len = glt + 1
                if pos + 1 > n then
                    findings[#findings + 1] = { "eno-length-byte", sfmt("length byte 0x%02x is the option's last byte: its %d data bytes would run past the end", byte, data_len) }
                    return subs, findings, true
                end
                local tb = sbyte(contents, pos + 1)
                if tb < 0xa0 then
                    findings[#findings + 1] = { "eno-length-byte", sfmt("length byte 0x%02x is followed by 0x%02x: expected a TEP identifier with v = 1 (0xa0-0xff)", byte, tb) }
                    return subs, findings, true
                end
                local last = pos + 1 + data_len
                if last > n then
                    findings[#findings + 1] = { "eno-length-byte", sfmt("length byte 0x%02x announces %d data bytes but only %d remain in the option", byte, data_len, n - pos - 1) }
                    return subs, findings, true
                end
                subs[#subs + 1] = { kind = "tep", tep = tb - 0x80, byte = tb, v = true, length_byte = byte,
                                    data = ssub(contents, pos + 2, last), off = base + pos - 1,
                                    len = last - pos + 1, tep_off = base + pos, data_off = base + pos + 1 }
                pos = last + 1
            end
        end
    end
    return subs, findings, false
end
M.parse_suboptions = parse_suboptions

-- kind and data (the bytes after the length byte) -> option, or nil when not ENO
local function decode_eno(kind, data)
    local raw = schar(kind, (#data + 2) % 256) .. data
    if kind == 69 then
        local subs, findings, malformed = parse_suboptions(data, 2)
        return { encoding = "rfc", kind = kind, raw = raw, contents = data, subs = subs,
                 findings = findings, malformed = malformed }
    end
    if (kind == 253 or kind == 254) and #data >= 2 and be16(data, 1) == 0x454E then
        local contents = ssub(data, 3)
        local subs, findings, malformed = parse_suboptions(contents, 4)
        return { encoding = "experimental", kind = kind, raw = raw, contents = contents, subs = subs,
                 findings = findings, malformed = malformed }
    end
    return nil
end
M.decode_eno = decode_eno

local function opt_global(opt) -- the global suboption that counts: the first (§4.2)
    for _, s in ipairs(opt.subs) do if s.kind == "global" then return s end end
    return nil
end

local function opt_b(opt) -- explicit or implicit (0x00) b bit
    local g = opt_global(opt)
    return g ~= nil and g.byte % 2 == 1
end

local function opt_teps(opt)
    local out = {}
    for _, s in ipairs(opt.subs) do if s.kind == "tep" then out[#out + 1] = s end end
    return out
end

-- a SYN's ENO: { options = {...}, packet }; the option that counts (none when several, §4.1)
local function syn_option(se)
    if se and #se.options == 1 then return se.options[1] end
    return nil
end
local function syn_present(se) return se ~= nil and #se.options > 0 end
local EMPTY_SYN = { options = {} }

-- tcpcrypt's reading of its suboption data (RFC 8548 §3.2, §3.5)
local function tcpcrypt_kind(sub)
    if not sub.data or #sub.data < 9 then return "fresh" end
    if #sub.data <= 17 then return "resume" end
    return "invalid"
end

local function subs_for(opt, tep)
    local out = {}
    for _, s in ipairs(opt.subs) do if s.kind == "tep" and s.tep == tep then out[#out + 1] = s end end
    return out
end

-- RFC 8547 §4.5 conditions 1-3, with tcpcrypt's data rules
local function tep_valid(a, b, tep)
    local as, bs = subs_for(a, tep), subs_for(b, tep)
    if #as == 0 or #bs == 0 then return false end
    if not TEPS[tep] then return true end
    if #as > 1 or #bs > 1 then return false end
    local ka, kb = tcpcrypt_kind(as[1]), tcpcrypt_kind(bs[1])
    if ka == "invalid" or kb == "invalid" then return false end
    return not (kb == "resume" and ka ~= "resume")
end

local function choose_tep(a, b) -- the last valid TEP in B's option
    local chosen = nil
    for _, s in ipairs(opt_teps(b)) do
        if tep_valid(a, b, s.tep) then chosen = s end
    end
    return chosen
end

-- the 2016 drafts had no role bit: the daemon's SYN-ACK has no global suboption, or only its
-- application-aware byte 0x02 (b = 0); the passive opener is B
local function pre_rfc_roles(first, second, simultaneous)
    return not simultaneous and first.encoding == "experimental" and second.encoding == "experimental"
        and not opt_b(first) and not opt_b(second)
end

-- the 2016 daemon's resumption: a v = 1 suboption with the cached session's identifier in
-- A's list, answered by that identifier byte alone (eno.pre_rfc_resumption)
local function pre_rfc_resumption(sa, sb)
    local offers = {}
    for _, s in ipairs(opt_teps(sa)) do if s.data and #s.data > 0 then offers[s.tep] = true end end
    local teps = opt_teps(sb)
    for i = #teps, 1, -1 do
        local s = teps[i]
        if offers[s.tep] and not (s.data and #s.data > 0) then return s end
    end
    return nil
end

-- The ENO outcome with exactly one reason, most specific first (RFC 8547 §4.1-§4.6).
-- first: the active opener's SYN (or the first bare SYN of a simultaneous open).
local function negotiate(first, second, ack_has_eno, simultaneous, seen)
    if not seen then return { status = "unknown", reason = "handshake-not-captured", a_is_first = true, roles = "opener" } end
    first, second = first or EMPTY_SYN, second or EMPTY_SYN
    if not syn_present(first) and (not simultaneous or not syn_present(second)) then
        return { status = "absent", reason = "absent", a_is_first = true, roles = "opener" }
    end
    for _, se in ipairs({ first, second }) do
        if #se.options > 1 then return { status = "fallback", reason = "multiple-eno-options", a_is_first = true, roles = "opener" } end
    end
    for _, se in ipairs({ first, second }) do
        local o = syn_option(se)
        if o and o.malformed then return { status = "fallback", reason = "malformed-eno", a_is_first = true, roles = "opener" } end
    end
    local of, os_ = syn_option(first), syn_option(second)
    if not of or not os_ then
        return { status = "fallback", reason = "synack-without-eno", a_is_first = of ~= nil, roles = "opener" }
    end
    local roles = "b-bit"
    if opt_b(of) == opt_b(os_) then
        if pre_rfc_roles(of, os_, simultaneous) then
            roles = "pre-rfc"
        else
            return { status = "fallback", reason = "role-conflict", a_is_first = true, roles = "opener" }
        end
    end
    local a_is_first = roles == "pre-rfc" or not opt_b(of)
    local sa, sb = of, os_
    if not a_is_first then sa, sb = os_, of end
    local pre_resume = (roles == "pre-rfc") and pre_rfc_resumption(sa, sb) or nil
    local chosen = pre_resume or choose_tep(sa, sb)
    if not chosen then
        return { status = "fallback", reason = "no-common-tep", a_is_first = a_is_first, roles = roles }
    end
    local resumed = pre_resume ~= nil or (TEPS[chosen.tep] ~= nil and tcpcrypt_kind(chosen) == "resume")
    local neg = { tep = chosen.tep, tep_byte = chosen.byte, resumed = resumed, a_is_first = a_is_first, roles = roles,
                  pre_rfc_resume = pre_resume ~= nil }
    if ack_has_eno == nil then
        neg.status, neg.reason = "unknown", "handshake-not-captured"
    elseif not ack_has_eno then
        return { status = "fallback", reason = "ack-without-eno", a_is_first = a_is_first, roles = roles }
    else
        neg.status = "negotiated"
    end
    return neg
end
M.negotiate = negotiate

-- strict option walker: list of {kind, pos (0-based), data}, problems, bad kind
local function walk_options(o)
    local out, problems, bad = {}, {}, nil
    local pos, n = 1, #o
    while pos <= n do
        local kind = sbyte(o, pos)
        if kind == 0 then break end
        if kind == 1 then
            pos = pos + 1
        else
            if pos + 1 > n then
                problems[#problems + 1] = sfmt("option kind %d has no length byte (last byte of the options)", kind)
                bad = kind
                break
            end
            local len = sbyte(o, pos + 1)
            if len < 2 then
                problems[#problems + 1] = sfmt("option kind %d has length %d: expected >= 2", kind, len)
                bad = kind
                break
            end
            if pos + len - 1 > n then
                problems[#problems + 1] = sfmt("option kind %d has length %d but only %d option bytes remain", kind, len, n - pos + 1)
                bad = kind
                break
            end
            out[#out + 1] = { kind = kind, pos = pos - 1, data = ssub(o, pos + 2, pos + len - 1) }
            pos = pos + len
        end
    end
    return out, problems, bad
end

local LEGACY_OTHER = { [0x05] = true, [0x06] = true, [0x07] = true, [0x08] = true, [0x83] = true, [0x84] = true, [0x85] = true }

-- kind-69 data that is the pre-2015 tcpcrypt CRYPT option, not ENO (unambiguous shapes only)
-- seen: the connection already showed the legacy option (a non-SYN ENO's contents are
-- ignored by its receiver, RFC 8547 §4.1, so on their own they prove nothing)
local function looks_legacy(data, flags, seen)
    if #data == 0 then return false end
    local op = sbyte(data, 1)
    local syn, ack = floor(flags / 2) % 2 == 1, floor(flags / 16) % 2 == 1
    if syn and not ack then return false end
    if syn and (op == 0x41 or op == 0x42) and #data > 1 and (#data - 1) % 3 == 0 then return true end
    if seen and not syn and LEGACY_OTHER[op] and #data >= 2 then
        local _, _, malformed = parse_suboptions(data, 0)
        return malformed
    end
    return false
end

-- ------------------------------------------------------------------ Init messages (RFC 8548 §4.1, §5)
-- Cut Pub off the front of rest (bytes from Pub to the message's end): key or nil, problem.
-- The point's first byte gives its size; pubkey_len counts its two bytes or not ([ambiguous]).
local function split_pub(rest, tep)
    local info = TEPS[tep or 0]
    if not info then return nil, sfmt("TEP 0x%02x is not a tcpcrypt TEP", tep or 0) end
    if not info.prefix then
        if #rest < info.point then
            return nil, istr(#rest) .. " bytes left for a " .. istr(info.point) .. "-byte " .. info.name .. " public key"
        end
        local p = ssub(rest, 1, info.point)
        return { wire_len = info.point, point = p }, ""
    end
    if #rest < 3 then return nil, istr(#rest) .. " bytes left for pubkey_len and an " .. info.name .. " point" end
    local length, first = be16(rest, 1), sbyte(rest, 3)
    local plen = (first == 2 or first == 3) and info.point or (first == 4 and info.uncompressed) or nil
    if not plen then
        return nil, sfmt("the %s point starts with 0x%02x, expected 0x02/0x03 (compressed) or 0x04 (uncompressed)", info.name, first)
    end
    local reading = (length == plen + 2) and "whole" or (length == plen and "point") or nil
    if not reading then
        return nil, "pubkey_len " .. istr(length) .. " fits neither " .. istr(plen + 2) ..
            " (length field and point) nor " .. istr(plen) .. " (point) for a " .. istr(plen) .. "-byte " .. info.name .. " point"
    end
    if #rest < 2 + plen then
        return nil, istr(#rest - 2) .. " bytes left for a " .. istr(plen) .. "-byte " .. info.name .. " point"
    end
    return { wire_len = 2 + plen, point = ssub(rest, 3, 2 + plen), length_field = length,
             reading = reading, compressed = first ~= 4 }, ""
end

-- Parse a complete Init message (RFC 8548 layout, else the 2016 tcpcryptd one):
-- a table with 0-based offsets for display, findings and, on failure, failed = true.
local function parse_init(msg, is1, tep)
    local name = is1 and "Init1" or "Init2"
    local m = { is1 = is1, magic = be32(msg, 1), length = be32(msg, 5), findings = {} }
    local function add(code, text, off)
        m.findings[#m.findings + 1] = { code, name .. ": " .. text, off }
    end
    local n = #msg
    local k = is1 and sbyte(msg, 9) or 0
    if is1 then
        m.nciphers = k
        if k == 0 then add("tcpcrypt-no-ciphers", "nciphers is 0, expected at least 1") end
    end
    local problems = {}
    local layouts = { { 2, "rfc8548" } }
    if tep == 0x21 or tep == 0x22 then layouts[2] = { 1, "tcpcryptd-2016" } end
    for _, lay in ipairs(layouts) do
        local width, dialect = lay[1], lay[2]
        local start = is1 and (9 + width * k + 32) or (8 + width + 32) -- 0-based offset of Pub
        if start > n then
            problems[#problems + 1] = is1 and (istr(k) .. " ciphers and N_A need " .. istr(start) .. " bytes, message_len is " .. istr(n))
                or ("N_B needs " .. istr(start) .. " bytes, message_len is " .. istr(n))
        else
            local pub, problem = split_pub(ssub(msg, start + 1), tep)
            if not pub then
                problems[#problems + 1] = problem
            elseif not (dialect == "tcpcryptd-2016" and pub.compressed ~= false) then
                m.dialect, m.width = dialect, width
                if is1 then
                    m.ciphers = {}
                    for i = 1, k do
                        local at = 9 + width * (i - 1)
                        m.ciphers[i] = width == 2 and be16(msg, at + 1) or sbyte(msg, at + 1)
                    end
                    m.cipher_off = 9
                else
                    m.cipher = width == 2 and be16(msg, 9) or sbyte(msg, 9)
                    m.ciphers = { m.cipher }
                    m.cipher_off = 8
                end
                for i, c in ipairs(m.ciphers) do
                    if not AEAD_KEYLEN[c] then add("tcpcrypt-unknown-aead", sfmt("unknown sym_cipher 0x%04x", c), m.cipher_off + width * (i - 1)) end
                end
                m.nonce_off = start - 32
                m.nonce = ssub(msg, start - 31, start)
                m.pub = pub
                m.pubkey = pub.point
                m.pub_off = start
                m.ign_off, m.ign_len = start + pub.wire_len, n - start - pub.wire_len
                if dialect == "rfc8548" then
                    if pub.compressed == false then
                        add("pubkey-uncompressed", "the public key is an uncompressed point; senders MUST use the compressed format", start + 2)
                    end
                    if m.ign_len > 0 then
                        add("init-ignored-nonempty", istr(m.ign_len) .. " bytes follow the public key; senders MUST leave the ignored field empty (receivers skip them)", m.ign_off)
                    end
                end
                return m
            end
        end
    end
    add("tcpcrypt-bad-pubkey", problems[1] or "no usable layout", is1 and 9 or 10)
    m.failed = true
    return m
end
M.parse_init = parse_init

-- the TEP of an Init message whose SYNs were not captured: prefer a key that ends it exactly
local function infer_tep(msg, is1)
    if #msg < 9 then return nil end
    local best = nil
    for _, tep in ipairs({ 0x23, 0x24, 0x21, 0x22 }) do
        local m = parse_init(msg, is1, tep)
        if not m.failed then
            if m.ign_len == 0 then return tep end
            best = best or tep
        end
    end
    return best
end
M.infer_tep = infer_tep

if not Proto then
    return M -- loaded by a plain Lua interpreter (unit tests of the helpers above)
end

-- ------------------------------------------------------------------ version checks
local WS_MAJOR, WS_MINOR = 0, 0
do
    local v = (type(get_version) == "function") and get_version() or "0.0"
    local a, b = string.match(v, "^(%d+)%.(%d+)")
    WS_MAJOR, WS_MINOR = tonumber(a) or 0, tonumber(b) or 0
end
if WS_MAJOR < 3 or type(register_postdissector) ~= "function" or type(ProtoExpert) ~= "table" then
    local msg = "tcpinc.lua needs Wireshark 3.0 or newer (this is " .. istr(WS_MAJOR) .. "." ..
        istr(WS_MINOR) .. "); the TCP-ENO/tcpcrypt dissector is not loaded."
    if type(report_failure) == "function" then report_failure(msg) else print(msg) end
    return
end

local in_gui = in_gui_process

-- Loaded twice (installed in the plugin folder and also given with -X lua_script:, or two
-- copies in plugin folders): every script shares one Lua state, and a second Proto()
-- with the same name would fail. The first copy stays; this one steps aside and says
-- which copy is in use. A copy older than this check is recognised by its dissector.
do
    local here = (debug and debug.getinfo and debug.getinfo(1, "S").source or "?"):gsub("^@", "")
    local first = rawget(_G, "TCPINC_LUA_LOADED")
    if first == nil then
        local ok, older = pcall(Dissector.get, "tcpeno")
        if ok and older then first = { path = "another plugin", version = "an older version" } end
    end
    if first ~= nil then
        local msg = "tcpinc.lua: the TCP-ENO/tcpcrypt dissector is already loaded from " ..
            tostring(first.path) .. " (" .. tostring(first.version) .. "); this copy (" .. here ..
            ", " .. PLUGIN_VERSION .. ") steps aside" ..
            ((first.version ~= PLUGIN_VERSION) and ": remove or update the other copy to use this one" or "")
        if not in_gui then pcall(function() io.stderr:write(msg .. "\n") end) end
        return
    end
    _G.TCPINC_LUA_LOADED = { path = here, version = PLUGIN_VERSION }
end

-- BEGIN GENERATED FIELDS (python -m tcpinc_analyze.wireshark.luagen; source: dissectors/fields.json)
-- Do not edit: change dissectors/fields.json and run the generator.
local P = {
    tcpeno = Proto("tcpeno", "TCP Encryption Negotiation Option (RFC 8547)"),
    tcpcrypt = Proto("tcpcrypt", "tcpcrypt (RFC 8548)"),
}
local VALS = {
    tep = {
        [0x20] = "experimental use",
        [0x21] = "TCPCRYPT_ECDHE_P256",
        [0x22] = "TCPCRYPT_ECDHE_P521",
        [0x23] = "TCPCRYPT_ECDHE_Curve25519",
        [0x24] = "TCPCRYPT_ECDHE_Curve448",
    },
    aead = {
        [0x0001] = "AEAD_AES_128_GCM",
        [0x0002] = "AEAD_AES_256_GCM",
        [0x0010] = "AEAD_CHACHA20_POLY1305",
    },
    eno_status = {
        ["negotiated"] = "ENO succeeded: the negotiated TEP protects the connection",
        ["fallback"] = "ENO failed: the connection fell back to plain TCP",
        ["absent"] = "no ENO in A's SYN: plain TCP",
        ["unknown"] = "the handshake was not captured: outcome inferred",
    },
    eno_reason = {
        ["absent"] = "no ENO in A's SYN (plain TCP)",
        ["multiple-eno-options"] = "a SYN carried more than one ENO option, which counts as none (RFC 8547 §4.1)",
        ["malformed-eno"] = "ill-formed ENO option in a SYN (RFC 8547 §4.4)",
        ["synack-without-eno"] = "B's SYN-ACK without ENO (peer lacks ENO or a middlebox stripped it)",
        ["role-conflict"] = "both hosts sent the same passive-role bit b (RFC 8547 §4.3)",
        ["no-common-tep"] = "no valid TEP in common (RFC 8547 §4.5)",
        ["ack-without-eno"] = "A's first ACK without ENO (RFC 8547 §4.6)",
        ["handshake-not-captured"] = "handshake not captured",
    },
    encoding = {
        ["rfc"] = "RFC 8547 encoding (option kind 69)",
        ["experimental"] = "pre-RFC experimental encoding (kind 253/254, ExID 0x454E)",
    },
    role = {
        ["A"] = "host A (sent b = 0)",
        ["B"] = "host B (sent b = 1)",
    },
    keys_from = {
        ["session_secret"] = "TCPCRYPT_SESSION_SECRET line",
        ["private_key"] = "TCPCRYPT_EPHEMERAL_PRIVATE line (ECDH)",
        ["resumption"] = "resumption chain ss[0] -> ss[i] of a session known from the capture or key log",
        ["master_key"] = "TCPCRYPT_MASTER_KEY line (every generation, no session ID)",
        ["traffic_keys"] = "TCPCRYPT_TRAFFIC_KEYS line (generation 0 only, no session ID)",
    },
    direction = {
        ["ab"] = "A->B",
        ["ba"] = "B->A",
    },
    roles = {
        ["b-bit"] = "roles from the b bits (RFC 8547 §4.3)",
        ["opener"] = "ENO set no roles: the active opener is called A",
        ["pre-rfc"] = "pre-RFC experimental ENO: the passive opener is B without a global suboption",
    },
    dialect = {
        ["rfc8548"] = "RFC 8548",
        ["tcpcryptd-2016"] = "2016 tcpcryptd (drafts tcpcrypt-02 / eno-03)",
    },
    nonce_offset_base = {
        ["tcp-stream"] = "frame offset counted from the first byte of the TCP stream (Init included)",
        ["after-init"] = "frame offset counted from the first byte after the Init message",
    },
    pubkey_len_reading = {
        ["whole"] = "pubkey_len counts its two bytes and the point (RFC 8548 Figure 5)",
        ["point"] = "pubkey_len counts the point only",
    },
}
local F = {}
F["tcpeno.kind"] = ProtoField.uint8("tcpeno.kind", "Kind", base.DEC, nil, nil, "TCP option kind: 69 (RFC 8547) or 253/254 (pre-RFC experimental)")
F["tcpeno.length"] = ProtoField.uint8("tcpeno.length", "Length", base.DEC, nil, nil, "TCP option length byte")
F["tcpeno.exid"] = ProtoField.uint16("tcpeno.exid", "ExID", base.HEX, nil, nil, "RFC 6994 experiment identifier (0x454E for ENO)")
F["tcpeno.option.encoding"] = ProtoField.string("tcpeno.option.encoding", "Option encoding", base.ASCII, "rfc (kind 69) or experimental (kind 253/254 + ExID)")
F["tcpeno.suboption"] = ProtoField.none("tcpeno.suboption", "Suboption", "One ENO suboption")
F["tcpeno.global"] = ProtoField.uint8("tcpeno.global", "Global suboption", base.HEX, nil, nil, "Global suboption byte 0 0 0 z1 z2 z3 a b (RFC 8547 §4.2)")
F["tcpeno.global.b"] = ProtoField.bool("tcpeno.global.b", "b (passive role)", 8, nil, 0x01, "Passive role bit: the host with b = 1 is host B")
F["tcpeno.global.a"] = ProtoField.bool("tcpeno.global.a", "a (application-aware)", 8, nil, 0x02, "Application-aware bit")
F["tcpeno.global.z"] = ProtoField.uint8("tcpeno.global.z", "z (reserved)", base.DEC, nil, 0x1c, "Reserved z1 z2 z3 bits, sent as zero")
F["tcpeno.global.implicit"] = ProtoField.bool("tcpeno.global.implicit", "Implicit global suboption", base.NONE, nil, nil, "No explicit global suboption: the implicit 0x00 applies")
F["tcpeno.tep"] = ProtoField.uint8("tcpeno.tep", "TEP", base.HEX, VALS.tep, 0x7f, "TCP Encryption Protocol identifier (glt)")
F["tcpeno.tep.v"] = ProtoField.bool("tcpeno.tep.v", "v (has data)", 8, nil, 0x80, "The TEP suboption carries data")
F["tcpeno.length_byte"] = ProtoField.uint8("tcpeno.length_byte", "Length byte", base.HEX, nil, nil, "Length byte 100nnnnn announcing nnnnn+1 bytes of suboption data")
F["tcpeno.length_byte.data_len"] = ProtoField.uint8("tcpeno.length_byte.data_len", "Data length", base.DEC, nil, nil, "Suboption data bytes announced by the length byte (nnnnn + 1)")
F["tcpeno.tep.data"] = ProtoField.bytes("tcpeno.tep.data", "Suboption data", base.NONE, "TEP suboption data (tcpcrypt: resumption identifier half and nonce)")
F["tcpeno.malformed"] = ProtoField.bool("tcpeno.malformed", "Malformed", base.NONE, nil, nil, "The ENO option is ill-formed and ignored (ENO fails)")
F["tcpeno.connection"] = ProtoField.none("tcpeno.connection", "ENO connection", "Per-connection ENO outcome (generated)")
F["tcpeno.status"] = ProtoField.string("tcpeno.status", "Status", base.ASCII, "negotiated, fallback, absent or unknown")
F["tcpeno.reason"] = ProtoField.string("tcpeno.reason", "Fallback reason", base.ASCII, "Why ENO did not succeed")
F["tcpeno.negotiated_tep"] = ProtoField.uint8("tcpeno.negotiated_tep", "Negotiated TEP", base.HEX, VALS.tep, nil, "The last valid TEP in B's SYN-form option")
F["tcpeno.encoding"] = ProtoField.string("tcpeno.encoding", "Encoding", base.ASCII, "Encoding of A's SYN option (rfc or experimental)")
F["tcpeno.roles"] = ProtoField.string("tcpeno.roles", "Roles", base.ASCII, "How roles were decided")
F["tcpeno.role"] = ProtoField.string("tcpeno.role", "Sender role", base.ASCII, "Role of this packet's sender (A or B)")
F["tcpeno.host_a"] = ProtoField.string("tcpeno.host_a", "Host A", base.ASCII, "Host A as ip:port, IPv6 as [addr]:port")
F["tcpeno.host_b"] = ProtoField.string("tcpeno.host_b", "Host B", base.ASCII, "Host B as ip:port, IPv6 as [addr]:port")
F["tcpeno.simultaneous_open"] = ProtoField.bool("tcpeno.simultaneous_open", "Simultaneous open", base.NONE, nil, nil, "Both hosts sent a bare SYN")
F["tcpeno.resumed"] = ProtoField.bool("tcpeno.resumed", "Resumed session", base.NONE, nil, nil, "B's and A's suboptions for the negotiated TEP are resumption suboptions")
F["tcpeno.session_id"] = ProtoField.bytes("tcpeno.session_id", "Session ID", base.NONE, "B's byte for the negotiated TEP (v bit included), then the TEP's session ID (33 bytes for tcpcrypt)")
F["tcpeno.syn_a"] = ProtoField.framenum("tcpeno.syn_a", "A's SYN", base.NONE, nil, nil, "Packet carrying A's SYN")
F["tcpeno.syn_b"] = ProtoField.framenum("tcpeno.syn_b", "B's SYN", base.NONE, nil, nil, "Packet carrying B's SYN (normally the SYN-ACK)")
F["tcpeno.ack_a"] = ProtoField.framenum("tcpeno.ack_a", "A's first ACK", base.NONE, nil, nil, "The active opener's third segment, which must carry ENO")
F["tcpeno.conformance"] = ProtoField.string("tcpeno.conformance", "Conformance", base.ASCII, "Code of a broken RFC 8547/8548 rule (see tcpinc-analyze conformance)")
F["tcpeno.conformance.rfc"] = ProtoField.string("tcpeno.conformance.rfc", "RFC section", base.ASCII, "RFC section of the broken rule")
F["tcpcrypt.direction"] = ProtoField.string("tcpcrypt.direction", "Direction", base.ASCII, "ab (A->B) or ba (B->A)")
F["tcpcrypt.stream_offset"] = ProtoField.uint64("tcpcrypt.stream_offset", "Stream offset", base.DEC, nil, nil, "Offset of the message or frame in its direction's TCP stream (0 = first byte after the SYN)")
F["tcpcrypt.segments"] = ProtoField.uint32("tcpcrypt.segments", "Segments", base.DEC, nil, nil, "TCP segments the message or frame spans")
F["tcpcrypt.first_packet"] = ProtoField.framenum("tcpcrypt.first_packet", "First segment", base.NONE, nil, nil, "Packet holding the first byte of this message or frame")
F["tcpcrypt.continued_in"] = ProtoField.framenum("tcpcrypt.continued_in", "Completed in", base.NONE, nil, nil, "Packet in which the message or frame starting here is complete")
F["tcpcrypt.aead"] = ProtoField.uint16("tcpcrypt.aead", "AEAD", base.HEX, VALS.aead, nil, "sym_cipher chosen by B in Init2 (or the original session's when resumed)")
F["tcpcrypt.resumed"] = ProtoField.bool("tcpcrypt.resumed", "Resumed", base.NONE, nil, nil, "The session resumed an earlier one (no Init messages)")
F["tcpcrypt.resume.half"] = ProtoField.bytes("tcpcrypt.resume.half", "Resumption identifier half", base.NONE, "resume[i]{0..8} (sent by the host that was originally A) or resume[i]{9..17}")
F["tcpcrypt.resume.nonce"] = ProtoField.bytes("tcpcrypt.resume.nonce", "Resumption nonce", base.NONE, "The 0-8 byte nonce after the identifier half; sn[i] = nonce_a | nonce_b")
F["tcpcrypt.resume.index"] = ProtoField.uint32("tcpcrypt.resume.index", "Resumption index", base.DEC, nil, nil, "i: the session secret ss[i] that keys this connection")
F["tcpcrypt.keys_from"] = ProtoField.string("tcpcrypt.keys_from", "Keys from", base.ASCII, "Key-log entry the traffic keys came from")
F["tcpcrypt.dialect"] = ProtoField.string("tcpcrypt.dialect", "Dialect", base.ASCII, "rfc8548, or tcpcryptd-2016 (the pre-RFC layout)")
F["tcpcrypt.nonce_offset_base"] = ProtoField.string("tcpcrypt.nonce_offset_base", "Frame-ID offset base", base.ASCII, "Which reading of RFC 8548 §3.6's frame offset authenticated")
F["tcpcrypt.init1"] = ProtoField.none("tcpcrypt.init1", "Init1", "A's key-exchange message")
F["tcpcrypt.init1.magic"] = ProtoField.uint32("tcpcrypt.init1.magic", "Magic", base.HEX, nil, nil, "INIT1_MAGIC 0x15101a0e")
F["tcpcrypt.init1.length"] = ProtoField.uint32("tcpcrypt.init1.length", "Message length", base.DEC, nil, nil, "message_len: the whole message including magic and length")
F["tcpcrypt.init1.nciphers"] = ProtoField.uint8("tcpcrypt.init1.nciphers", "Number of ciphers", base.DEC, nil, nil, "nciphers: two-byte sym_cipher identifiers that follow")
F["tcpcrypt.init1.sym_cipher"] = ProtoField.uint16("tcpcrypt.init1.sym_cipher", "Offered cipher", base.HEX, VALS.aead, nil, "sym_cipher offered by A")
F["tcpcrypt.init1.nonce"] = ProtoField.bytes("tcpcrypt.init1.nonce", "N_A", base.NONE, "A's 32-byte nonce (the key-log lookup key)")
F["tcpcrypt.init1.pubkey_len"] = ProtoField.uint16("tcpcrypt.init1.pubkey_len", "pubkey_len", base.DEC, nil, nil, "Two-byte length before a P-256/P-521 point")
F["tcpcrypt.init1.pubkey"] = ProtoField.bytes("tcpcrypt.init1.pubkey", "Pub_A", base.NONE, "A's ephemeral public key (compressed point for P-256/P-521)")
F["tcpcrypt.init1.ignored"] = ProtoField.bytes("tcpcrypt.init1.ignored", "Ignored bytes", base.NONE, "Bytes after the public key: senders must leave none, receivers skip them")
F["tcpcrypt.init2"] = ProtoField.none("tcpcrypt.init2", "Init2", "B's key-exchange message")
F["tcpcrypt.init2.magic"] = ProtoField.uint32("tcpcrypt.init2.magic", "Magic", base.HEX, nil, nil, "INIT2_MAGIC 0x097105e0")
F["tcpcrypt.init2.length"] = ProtoField.uint32("tcpcrypt.init2.length", "Message length", base.DEC, nil, nil, "message_len: the whole message including magic and length")
F["tcpcrypt.init2.sym_cipher"] = ProtoField.uint16("tcpcrypt.init2.sym_cipher", "Chosen cipher", base.HEX, VALS.aead, nil, "sym_cipher chosen by B")
F["tcpcrypt.init2.nonce"] = ProtoField.bytes("tcpcrypt.init2.nonce", "N_B", base.NONE, "B's 32-byte nonce")
F["tcpcrypt.init2.pubkey_len"] = ProtoField.uint16("tcpcrypt.init2.pubkey_len", "pubkey_len", base.DEC, nil, nil, "Two-byte length before a P-256/P-521 point")
F["tcpcrypt.init2.pubkey"] = ProtoField.bytes("tcpcrypt.init2.pubkey", "Pub_B", base.NONE, "B's ephemeral public key (compressed point for P-256/P-521)")
F["tcpcrypt.init2.ignored"] = ProtoField.bytes("tcpcrypt.init2.ignored", "Ignored bytes", base.NONE, "Bytes after the public key: senders must leave none, receivers skip them")
F["tcpcrypt.pubkey_len_reading"] = ProtoField.string("tcpcrypt.pubkey_len_reading", "pubkey_len reading", base.ASCII, "whether pubkey_len counted its own two bytes (whole) or the point only")
F["tcpcrypt.frame"] = ProtoField.none("tcpcrypt.frame", "Frame", "One encryption frame")
F["tcpcrypt.frame.number"] = ProtoField.uint32("tcpcrypt.frame.number", "Frame number", base.DEC, nil, nil, "1-based index of the frame in its direction")
F["tcpcrypt.frame.control"] = ProtoField.uint8("tcpcrypt.frame.control", "Control", base.HEX, nil, nil, "Frame control byte: cres (7 bits) and rekey")
F["tcpcrypt.frame.control.rekey"] = ProtoField.bool("tcpcrypt.frame.control.rekey", "Rekey", 8, nil, 0x01, "The sender moved to its next key generation with this frame")
F["tcpcrypt.frame.control.cres"] = ProtoField.uint8("tcpcrypt.frame.control.cres", "cres (reserved)", base.HEX, nil, 0xfe, "Reserved control bits, sent as zero")
F["tcpcrypt.frame.clen"] = ProtoField.uint16("tcpcrypt.frame.clen", "clen", base.DEC, nil, nil, "Ciphertext length including the 16-byte tag")
F["tcpcrypt.frame.offset"] = ProtoField.uint64("tcpcrypt.frame.offset", "Frame-ID offset", base.DEC, nil, nil, "The offset in the frame ID (per tcpcrypt.nonce_offset_base)")
F["tcpcrypt.frame.nonce"] = ProtoField.bytes("tcpcrypt.frame.nonce", "Nonce", base.NONE, "AEAD nonce N = frame_ID XOR NR")
F["tcpcrypt.frame.generation"] = ProtoField.uint32("tcpcrypt.frame.generation", "Key generation", base.DEC, nil, nil, "Key generation j of the frame's traffic key (mk[j])")
F["tcpcrypt.frame.ciphertext"] = ProtoField.bytes("tcpcrypt.frame.ciphertext", "Ciphertext", base.NONE, "Encrypted plaintext (without the tag)")
F["tcpcrypt.frame.tag"] = ProtoField.bytes("tcpcrypt.frame.tag", "Tag", base.NONE, "16-byte AEAD authentication tag")
F["tcpcrypt.frame.verified"] = ProtoField.bool("tcpcrypt.frame.verified", "Verified", base.NONE, nil, nil, "The tag authenticates with the key from the key log")
F["tcpcrypt.plaintext"] = ProtoField.none("tcpcrypt.plaintext", "Plaintext", "The decrypted frame")
F["tcpcrypt.plaintext.flags"] = ProtoField.uint8("tcpcrypt.plaintext.flags", "Flags", base.HEX, nil, nil, "Plaintext flags byte")
F["tcpcrypt.plaintext.flags.finp"] = ProtoField.bool("tcpcrypt.plaintext.flags.finp", "FINp", 8, nil, 0x01, "The sender's last frame")
F["tcpcrypt.plaintext.flags.urgp"] = ProtoField.bool("tcpcrypt.plaintext.flags.urgp", "URGp", 8, nil, 0x02, "The urgent field is present")
F["tcpcrypt.plaintext.flags.fres"] = ProtoField.uint8("tcpcrypt.plaintext.flags.fres", "fres (reserved)", base.HEX, nil, 0xfc, "Reserved plaintext flag bits, sent as zero")
F["tcpcrypt.plaintext.urgent"] = ProtoField.uint16("tcpcrypt.plaintext.urgent", "Urgent", base.DEC, nil, nil, "Urgent field: offset from the frame's offset (present with URGp)")
F["tcpcrypt.plaintext.data"] = ProtoField.bytes("tcpcrypt.plaintext.data", "Application data", base.NONE, "Decrypted application data")
F["tcpcrypt.plaintext.data_len"] = ProtoField.uint32("tcpcrypt.plaintext.data_len", "Application data length", base.DEC, nil, nil, "Bytes of decrypted application data")
P.tcpeno.fields = {
    F["tcpeno.kind"],
    F["tcpeno.length"],
    F["tcpeno.exid"],
    F["tcpeno.option.encoding"],
    F["tcpeno.suboption"],
    F["tcpeno.global"],
    F["tcpeno.global.b"],
    F["tcpeno.global.a"],
    F["tcpeno.global.z"],
    F["tcpeno.global.implicit"],
    F["tcpeno.tep"],
    F["tcpeno.tep.v"],
    F["tcpeno.length_byte"],
    F["tcpeno.length_byte.data_len"],
    F["tcpeno.tep.data"],
    F["tcpeno.malformed"],
    F["tcpeno.connection"],
    F["tcpeno.status"],
    F["tcpeno.reason"],
    F["tcpeno.negotiated_tep"],
    F["tcpeno.encoding"],
    F["tcpeno.roles"],
    F["tcpeno.role"],
    F["tcpeno.host_a"],
    F["tcpeno.host_b"],
    F["tcpeno.simultaneous_open"],
    F["tcpeno.resumed"],
    F["tcpeno.session_id"],
    F["tcpeno.syn_a"],
    F["tcpeno.syn_b"],
    F["tcpeno.ack_a"],
    F["tcpeno.conformance"],
    F["tcpeno.conformance.rfc"],
}
P.tcpcrypt.fields = {
    F["tcpcrypt.direction"],
    F["tcpcrypt.stream_offset"],
    F["tcpcrypt.segments"],
    F["tcpcrypt.first_packet"],
    F["tcpcrypt.continued_in"],
    F["tcpcrypt.aead"],
    F["tcpcrypt.resumed"],
    F["tcpcrypt.resume.half"],
    F["tcpcrypt.resume.nonce"],
    F["tcpcrypt.resume.index"],
    F["tcpcrypt.keys_from"],
    F["tcpcrypt.dialect"],
    F["tcpcrypt.nonce_offset_base"],
    F["tcpcrypt.init1"],
    F["tcpcrypt.init1.magic"],
    F["tcpcrypt.init1.length"],
    F["tcpcrypt.init1.nciphers"],
    F["tcpcrypt.init1.sym_cipher"],
    F["tcpcrypt.init1.nonce"],
    F["tcpcrypt.init1.pubkey_len"],
    F["tcpcrypt.init1.pubkey"],
    F["tcpcrypt.init1.ignored"],
    F["tcpcrypt.init2"],
    F["tcpcrypt.init2.magic"],
    F["tcpcrypt.init2.length"],
    F["tcpcrypt.init2.sym_cipher"],
    F["tcpcrypt.init2.nonce"],
    F["tcpcrypt.init2.pubkey_len"],
    F["tcpcrypt.init2.pubkey"],
    F["tcpcrypt.init2.ignored"],
    F["tcpcrypt.pubkey_len_reading"],
    F["tcpcrypt.frame"],
    F["tcpcrypt.frame.number"],
    F["tcpcrypt.frame.control"],
    F["tcpcrypt.frame.control.rekey"],
    F["tcpcrypt.frame.control.cres"],
    F["tcpcrypt.frame.clen"],
    F["tcpcrypt.frame.offset"],
    F["tcpcrypt.frame.nonce"],
    F["tcpcrypt.frame.generation"],
    F["tcpcrypt.frame.ciphertext"],
    F["tcpcrypt.frame.tag"],
    F["tcpcrypt.frame.verified"],
    F["tcpcrypt.plaintext"],
    F["tcpcrypt.plaintext.flags"],
    F["tcpcrypt.plaintext.flags.finp"],
    F["tcpcrypt.plaintext.flags.urgp"],
    F["tcpcrypt.plaintext.flags.fres"],
    F["tcpcrypt.plaintext.urgent"],
    F["tcpcrypt.plaintext.data"],
    F["tcpcrypt.plaintext.data_len"],
}
local function xgroup(name)
    return expert.group[name] or expert.group.PROTOCOL
end
local E = {}
local EXPERT_DEFS = {}
EXPERT_DEFS["eno-malformed"] = { protocol = "tcpeno", group = "malformed", severity = "error" }
E["eno-malformed"] = ProtoExpert.new("tcpeno.expert.eno_malformed", "Ill-formed ENO option: ignored, ENO fails", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["eno-length-byte"] = { protocol = "tcpeno", group = "malformed", severity = "error" }
E["eno-length-byte"] = ProtoExpert.new("tcpeno.expert.eno_length_byte", "Length byte error: the option is ignored (RFC 8547 §4.4)", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["eno-multiple-syn"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-multiple-syn"] = ProtoExpert.new("tcpeno.expert.eno_multiple_syn", "More than one ENO option in a SYN (RFC 8547 §4.1)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-both-encodings"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-both-encodings"] = ProtoExpert.new("tcpeno.expert.eno_both_encodings", "Option 69 and option 253/ExID in one segment (RFC 8547 §11)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-nonsyn-contents"] = { protocol = "tcpeno", group = "protocol", severity = "warn" }
E["eno-nonsyn-contents"] = ProtoExpert.new("tcpeno.expert.eno_nonsyn_contents", "Non-SYN-form ENO option with contents (RFC 8547 §4.1)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["eno-global-reserved"] = { protocol = "tcpeno", group = "protocol", severity = "warn" }
E["eno-global-reserved"] = ProtoExpert.new("tcpeno.expert.eno_global_reserved", "Reserved z bits set in the global suboption (RFC 8547 §4.2)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["eno-global-repeated"] = { protocol = "tcpeno", group = "protocol", severity = "warn" }
E["eno-global-repeated"] = ProtoExpert.new("tcpeno.expert.eno_global_repeated", "More than one global suboption in a SYN (RFC 8547 §4.2)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["eno-synack-no-explicit-b"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-synack-no-explicit-b"] = ProtoExpert.new("tcpeno.expert.eno_synack_no_explicit_b", "Passive opener's SYN-ACK without an explicit global suboption with b = 1 (RFC 8547 §4.2, §4.3)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-synack-multiple-teps"] = { protocol = "tcpeno", group = "protocol", severity = "note" }
E["eno-synack-multiple-teps"] = ProtoExpert.new("tcpeno.expert.eno_synack_multiple_teps", "Passive opener lists more than one TEP (RFC 8547 §4.5)", xgroup("PROTOCOL"), expert.severity.NOTE)
EXPERT_DEFS["eno-vacuous-reply"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-vacuous-reply"] = ProtoExpert.new("tcpeno.expert.eno_vacuous_reply", "Vacuous SYN-ACK option answering a SYN without ENO (RFC 8547 §4.6)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-ack-missing"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-ack-missing"] = ProtoExpert.new("tcpeno.expert.eno_ack_missing", "A's third segment without ENO after a valid SYN-ACK option (RFC 8547 §4.6)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-option-missing"] = { protocol = "tcpeno", group = "protocol", severity = "warn" }
E["eno-option-missing"] = ProtoExpert.new("tcpeno.expert.eno_option_missing", "Segment without ENO before its sender received a non-SYN segment (RFC 8547 §4.6)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["eno-after-fallback"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-after-fallback"] = ProtoExpert.new("tcpeno.expert.eno_after_fallback", "ENO option sent after falling back (RFC 8547 §4.6)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-syn-changed"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-syn-changed"] = ProtoExpert.new("tcpeno.expert.eno_syn_changed", "SYN-form ENO option changed on retransmission (RFC 8547 §4.6)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-dropped-on-retransmission"] = { protocol = "tcpeno", group = "protocol", severity = "note" }
E["eno-dropped-on-retransmission"] = ProtoExpert.new("tcpeno.expert.eno_dropped_on_retransmission", "Active opener dropped ENO from a retransmitted SYN (allowed)", xgroup("PROTOCOL"), expert.severity.NOTE)
EXPERT_DEFS["eno-syn-data"] = { protocol = "tcpeno", group = "protocol", severity = "error" }
E["eno-syn-data"] = ProtoExpert.new("tcpeno.expert.eno_syn_data", "SYN data with ENO that the SYN TEP does not define (RFC 8547 §4.7)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["eno-downgrade"] = { protocol = "tcpeno", group = "security", severity = "warn" }
E["eno-downgrade"] = ProtoExpert.new("tcpeno.expert.eno_downgrade", "ENO offered, SYN-ACK without it: peer without ENO or ENO stripped on the path (RFC 8547 §6, §9)", xgroup("SECURITY"), expert.severity.WARN)
EXPERT_DEFS["eno-experimental"] = { protocol = "tcpeno", group = "deprecated", severity = "note" }
E["eno-experimental"] = ProtoExpert.new("tcpeno.expert.eno_experimental", "ENO in the pre-RFC experimental encoding (kind 253/254, ExID 0x454E)", xgroup("DEPRECATED"), expert.severity.NOTE)
EXPERT_DEFS["eno-fallback"] = { protocol = "tcpeno", group = "protocol", severity = "note" }
E["eno-fallback"] = ProtoExpert.new("tcpeno.expert.eno_fallback", "ENO fell back to plain TCP", xgroup("PROTOCOL"), expert.severity.NOTE)
EXPERT_DEFS["tcp-option-malformed"] = { protocol = "tcpeno", group = "malformed", severity = "warn" }
E["tcp-option-malformed"] = ProtoExpert.new("tcpeno.expert.tcp_option_malformed", "Malformed TCP option", xgroup("MALFORMED"), expert.severity.WARN)
EXPERT_DEFS["handshake-not-captured"] = { protocol = "tcpeno", group = "sequence", severity = "note" }
E["handshake-not-captured"] = ProtoExpert.new("tcpeno.expert.handshake_not_captured", "Handshake not captured: roles and ENO outcome are inferred", xgroup("SEQUENCE"), expert.severity.NOTE)
EXPERT_DEFS["legacy-tcpcrypt-option"] = { protocol = "tcpeno", group = "deprecated", severity = "note" }
E["legacy-tcpcrypt-option"] = ProtoExpert.new("tcpeno.expert.legacy_tcpcrypt_option", "Kind 69 used as the pre-2015 tcpcrypt CRYPT option, not ENO", xgroup("DEPRECATED"), expert.severity.NOTE)
EXPERT_DEFS["pre-rfc-dialect"] = { protocol = "tcpeno", group = "deprecated", severity = "note" }
E["pre-rfc-dialect"] = ProtoExpert.new("tcpeno.expert.pre_rfc_dialect", "Pre-RFC dialect (2016 tcpcryptd), judged by its own rules", xgroup("DEPRECATED"), expert.severity.NOTE)
EXPERT_DEFS["tcp-gap"] = { protocol = "tcpcrypt", group = "sequence", severity = "warn" }
E["tcp-gap"] = ProtoExpert.new("tcpcrypt.expert.tcp_gap", "Bytes missing from the capture", xgroup("SEQUENCE"), expert.severity.WARN)
EXPERT_DEFS["tcp-retransmission"] = { protocol = "tcpcrypt", group = "sequence", severity = "note" }
E["tcp-retransmission"] = ProtoExpert.new("tcpcrypt.expert.tcp_retransmission", "Retransmitted bytes (already seen)", xgroup("SEQUENCE"), expert.severity.NOTE)
EXPERT_DEFS["tcp-out-of-order"] = { protocol = "tcpcrypt", group = "sequence", severity = "note" }
E["tcp-out-of-order"] = ProtoExpert.new("tcpcrypt.expert.tcp_out_of_order", "Out-of-order segment buffered", xgroup("SEQUENCE"), expert.severity.NOTE)
EXPERT_DEFS["retransmission-conflict"] = { protocol = "tcpcrypt", group = "security", severity = "warn" }
E["retransmission-conflict"] = ProtoExpert.new("tcpcrypt.expert.retransmission_conflict", "Retransmitted bytes differ from the first copy (RFC 8548 §3.6; the first copy is used)", xgroup("SECURITY"), expert.severity.WARN)
EXPERT_DEFS["packet-truncated"] = { protocol = "tcpcrypt", group = "malformed", severity = "note" }
E["packet-truncated"] = ProtoExpert.new("tcpcrypt.expert.packet_truncated", "Payload truncated by the snapshot length", xgroup("MALFORMED"), expert.severity.NOTE)
EXPERT_DEFS["tcpcrypt-bad-magic"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-bad-magic"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_bad_magic", "Stream does not start with the expected Init magic", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-bad-length"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-bad-length"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_bad_length", "Init message_len out of range", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-truncated"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-truncated"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_truncated", "Init message too short for its fields", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-no-ciphers"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-no-ciphers"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_no_ciphers", "Init1 offers no cipher", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-unknown-aead"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["tcpcrypt-unknown-aead"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_unknown_aead", "Unknown sym_cipher", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-bad-pubkey"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-bad-pubkey"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_bad_pubkey", "Public key field does not fit the TEP", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["init-no-psh"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["init-no-psh"] = ProtoExpert.new("tcpcrypt.expert.init_no_psh", "Init message's last segment without PSH (RFC 8548 §3.3)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["init-ignored-nonempty"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["init-ignored-nonempty"] = ProtoExpert.new("tcpcrypt.expert.init_ignored_nonempty", "Bytes in the ignored field of an Init message (RFC 8548 §4.1)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["init2-cipher-not-offered"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["init2-cipher-not-offered"] = ProtoExpert.new("tcpcrypt.expert.init2_cipher_not_offered", "B chose a cipher A did not offer (RFC 8548 §3.3)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["pubkey-uncompressed"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["pubkey-uncompressed"] = ProtoExpert.new("tcpcrypt.expert.pubkey_uncompressed", "Uncompressed public key (RFC 8548 §5)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["pubkey-invalid"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["pubkey-invalid"] = ProtoExpert.new("tcpcrypt.expert.pubkey_invalid", "Invalid public key or all-zero shared secret (RFC 8548 §5)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-init-incomplete"] = { protocol = "tcpcrypt", group = "reassemble", severity = "error" }
E["tcpcrypt-init-incomplete"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_init_incomplete", "Init message incomplete (gap or end of capture)", xgroup("REASSEMBLE"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-short-frame"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-short-frame"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_short_frame", "Frame clen cannot hold a tag and flags: resynchronising", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["frame-reserved-bits"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["frame-reserved-bits"] = ProtoExpert.new("tcpcrypt.expert.frame_reserved_bits", "Frame cres bits set (RFC 8548 §4.2)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-frame-lost"] = { protocol = "tcpcrypt", group = "sequence", severity = "warn" }
E["tcpcrypt-frame-lost"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_frame_lost", "Frame cut by bytes missing from the capture", xgroup("SEQUENCE"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-frame-truncated"] = { protocol = "tcpcrypt", group = "reassemble", severity = "warn" }
E["tcpcrypt-frame-truncated"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_frame_truncated", "Stream ends inside a frame", xgroup("REASSEMBLE"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-resync"] = { protocol = "tcpcrypt", group = "sequence", severity = "note" }
E["tcpcrypt-resync"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_resync", "Resynchronised at a frame boundary after skipping bytes", xgroup("SEQUENCE"), expert.severity.NOTE)
EXPERT_DEFS["tcpcrypt-resync-failed"] = { protocol = "tcpcrypt", group = "sequence", severity = "error" }
E["tcpcrypt-resync-failed"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_resync_failed", "No frame boundary found: the rest of the direction is not delimited", xgroup("SEQUENCE"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-after-fallback"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["tcpcrypt-after-fallback"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_after_fallback", "tcpcrypt Init1 although ENO fell back", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["frame-tag-failed"] = { protocol = "tcpcrypt", group = "decryption", severity = "error" }
E["frame-tag-failed"] = ProtoExpert.new("tcpcrypt.expert.frame_tag_failed", "Frame does not authenticate (RFC 8548 §3.6)", xgroup("DECRYPTION"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-wrong-key"] = { protocol = "tcpcrypt", group = "decryption", severity = "error" }
E["tcpcrypt-wrong-key"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_wrong_key", "No frame authenticates: the key-log entry is wrong", xgroup("DECRYPTION"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-no-key-for-frame"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["tcpcrypt-no-key-for-frame"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_no_key_for_frame", "No key for this frame's generation (traffic keys cover generation 0 only)", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["fin-without-finp"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["fin-without-finp"] = ProtoExpert.new("tcpcrypt.expert.fin_without_finp", "TCP FIN without a FINp frame (RFC 8548 §3.7)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["frames-after-finp"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["frames-after-finp"] = ProtoExpert.new("tcpcrypt.expert.frames_after_finp", "Frame after the FINp frame (RFC 8548 §3.7)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["rekey-not-answered"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["rekey-not-answered"] = ProtoExpert.new("tcpcrypt.expert.rekey_not_answered", "Rekey not answered with a rekey frame (RFC 8548 §3.8)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["rekey-empty-repeated"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["rekey-empty-repeated"] = ProtoExpert.new("tcpcrypt.expert.rekey_empty_repeated", "Second empty rekey while the first is unanswered (RFC 8548 §3.8)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["resume-nonce-too-long"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["resume-nonce-too-long"] = ProtoExpert.new("tcpcrypt.expert.resume_nonce_too_long", "Resumption nonce over 8 bytes (RFC 8548 §3.5)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["resume-duplicate-suboption"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["resume-duplicate-suboption"] = ProtoExpert.new("tcpcrypt.expert.resume_duplicate_suboption", "Two resumption suboptions for one TEP (RFC 8548 §3.5)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["resume-unsolicited"] = { protocol = "tcpcrypt", group = "protocol", severity = "error" }
E["resume-unsolicited"] = ProtoExpert.new("tcpcrypt.expert.resume_unsolicited", "Resumption agreed although A did not propose it (RFC 8548 §3.5)", xgroup("PROTOCOL"), expert.severity.ERROR)
EXPERT_DEFS["resume-multiple-suboptions"] = { protocol = "tcpcrypt", group = "protocol", severity = "note" }
E["resume-multiple-suboptions"] = ProtoExpert.new("tcpcrypt.expert.resume_multiple_suboptions", "More than one resumption suboption in a SYN (RFC 8548 §3.5)", xgroup("PROTOCOL"), expert.severity.NOTE)
EXPERT_DEFS["resume-identifier-reused"] = { protocol = "tcpcrypt", group = "security", severity = "error" }
E["resume-identifier-reused"] = ProtoExpert.new("tcpcrypt.expert.resume_identifier_reused", "Resumption identifier used again (RFC 8548 §3.5)", xgroup("SECURITY"), expert.severity.ERROR)
EXPERT_DEFS["tcpcrypt-no-fin-frame"] = { protocol = "tcpcrypt", group = "sequence", severity = "note" }
E["tcpcrypt-no-fin-frame"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_no_fin_frame", "Direction ended without a FINp frame: possibly truncated", xgroup("SEQUENCE"), expert.severity.NOTE)
EXPERT_DEFS["plaintext-reserved-bits"] = { protocol = "tcpcrypt", group = "protocol", severity = "warn" }
E["plaintext-reserved-bits"] = ProtoExpert.new("tcpcrypt.expert.plaintext_reserved_bits", "Plaintext fres bits set (RFC 8548 §4.2.1)", xgroup("PROTOCOL"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-urgent"] = { protocol = "tcpcrypt", group = "protocol", severity = "note" }
E["tcpcrypt-urgent"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_urgent", "URGp frame", xgroup("PROTOCOL"), expert.severity.NOTE)
EXPERT_DEFS["tcpcrypt-decrypted"] = { protocol = "tcpcrypt", group = "decryption", severity = "chat" }
E["tcpcrypt-decrypted"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_decrypted", "Frame decrypted and verified", xgroup("DECRYPTION"), expert.severity.CHAT)
EXPERT_DEFS["tcpcrypt-no-keys"] = { protocol = "tcpcrypt", group = "decryption", severity = "note" }
E["tcpcrypt-no-keys"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_no_keys", "No key-log entry for this session: frames are not decrypted", xgroup("DECRYPTION"), expert.severity.NOTE)
EXPERT_DEFS["keylog-embedded-unreadable"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["keylog-embedded-unreadable"] = ProtoExpert.new("tcpcrypt.expert.keylog_embedded_unreadable", "A key log embedded in this capture (pcapng Decryption Secrets Block) cannot be read by the Lua plugin: extract it with tcpinc-analyze extract-secrets", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-no-luaossl"] = { protocol = "tcpcrypt", group = "decryption", severity = "note" }
E["tcpcrypt-no-luaossl"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_no_luaossl", "Decryption needs the lua-luaossl package (openssl.cipher, openssl.hmac), which could not be loaded", xgroup("DECRYPTION"), expert.severity.NOTE)
EXPERT_DEFS["tcpcrypt-keylog-error"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["tcpcrypt-keylog-error"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_keylog_error", "Malformed key-log line skipped", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["tcp-option-padding"] = { protocol = "tcpeno", group = "protocol", severity = "note" }
E["tcp-option-padding"] = ProtoExpert.new("tcpeno.expert.tcp_option_padding", "Non-zero bytes after end-of-options", xgroup("PROTOCOL"), expert.severity.NOTE)
EXPERT_DEFS["tcpcrypt-plaintext-malformed"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["tcpcrypt-plaintext-malformed"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_plaintext_malformed", "Decrypted frame too short for its flags and urgent fields", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["keylog-wrong-key-length"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["keylog-wrong-key-length"] = ProtoExpert.new("tcpcrypt.expert.keylog_wrong_key_length", "Logged traffic keys have the wrong length for the session's AEAD", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["keylog-private-mismatch"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["keylog-private-mismatch"] = ProtoExpert.new("tcpcrypt.expert.keylog_private_mismatch", "Logged private key does not belong to the Init message's public key", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["keylog-private-unusable"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["keylog-private-unusable"] = ProtoExpert.new("tcpcrypt.expert.keylog_private_unusable", "Logged private key cannot be used", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["keys-need-handshake"] = { protocol = "tcpcrypt", group = "decryption", severity = "warn" }
E["keys-need-handshake"] = ProtoExpert.new("tcpcrypt.expert.keys_need_handshake", "A private key needs both SYNs' ENO options (the transcript), which are not in the capture", xgroup("DECRYPTION"), expert.severity.WARN)
EXPERT_DEFS["capture-damaged"] = { protocol = "tcpcrypt", group = "malformed", severity = "error" }
E["capture-damaged"] = ProtoExpert.new("tcpcrypt.expert.capture_damaged", "Capture file damaged at this record", xgroup("MALFORMED"), expert.severity.ERROR)
EXPERT_DEFS["packet-malformed"] = { protocol = "tcpcrypt", group = "malformed", severity = "warn" }
E["packet-malformed"] = ProtoExpert.new("tcpcrypt.expert.packet_malformed", "Malformed link, IP or TCP header", xgroup("MALFORMED"), expert.severity.WARN)
EXPERT_DEFS["ip-fragments-incomplete"] = { protocol = "tcpcrypt", group = "reassemble", severity = "warn" }
E["ip-fragments-incomplete"] = ProtoExpert.new("tcpcrypt.expert.ip_fragments_incomplete", "IP fragment trains never completed: their TCP segments are missing", xgroup("REASSEMBLE"), expert.severity.WARN)
EXPERT_DEFS["findings-capped"] = { protocol = "tcpcrypt", group = "comment", severity = "note" }
E["findings-capped"] = ProtoExpert.new("tcpcrypt.expert.findings_capped", "Further findings of one code are counted, not listed", xgroup("COMMENT"), expert.severity.NOTE)
EXPERT_DEFS["unsupported-linktype"] = { protocol = "tcpcrypt", group = "undecoded", severity = "warn" }
E["unsupported-linktype"] = ProtoExpert.new("tcpcrypt.expert.unsupported_linktype", "Link type not supported: packets skipped", xgroup("UNDECODED"), expert.severity.WARN)
EXPERT_DEFS["connection-evicted"] = { protocol = "tcpcrypt", group = "sequence", severity = "warn" }
E["connection-evicted"] = ProtoExpert.new("tcpcrypt.expert.connection_evicted", "Connection finalised early: the analyzer's connection table was full", xgroup("SEQUENCE"), expert.severity.WARN)
EXPERT_DEFS["connection-table-full"] = { protocol = "tcpcrypt", group = "sequence", severity = "warn" }
E["connection-table-full"] = ProtoExpert.new("tcpcrypt.expert.connection_table_full", "More connections open at once than the analyzer's limit: the least recently active were finalised early", xgroup("SEQUENCE"), expert.severity.WARN)
EXPERT_DEFS["tcpcrypt-lua-error"] = { protocol = "tcpcrypt", group = "debug", severity = "warn" }
E["tcpcrypt-lua-error"] = ProtoExpert.new("tcpcrypt.expert.tcpcrypt_lua_error", "Internal dissector problem caught (please report)", xgroup("DEBUG"), expert.severity.WARN)
P.tcpeno.experts = {
    E["eno-malformed"],
    E["eno-length-byte"],
    E["eno-multiple-syn"],
    E["eno-both-encodings"],
    E["eno-nonsyn-contents"],
    E["eno-global-reserved"],
    E["eno-global-repeated"],
    E["eno-synack-no-explicit-b"],
    E["eno-synack-multiple-teps"],
    E["eno-vacuous-reply"],
    E["eno-ack-missing"],
    E["eno-option-missing"],
    E["eno-after-fallback"],
    E["eno-syn-changed"],
    E["eno-dropped-on-retransmission"],
    E["eno-syn-data"],
    E["eno-downgrade"],
    E["eno-experimental"],
    E["eno-fallback"],
    E["tcp-option-malformed"],
    E["handshake-not-captured"],
    E["legacy-tcpcrypt-option"],
    E["pre-rfc-dialect"],
    E["tcp-option-padding"],
}
P.tcpcrypt.experts = {
    E["tcp-gap"],
    E["tcp-retransmission"],
    E["tcp-out-of-order"],
    E["retransmission-conflict"],
    E["packet-truncated"],
    E["tcpcrypt-bad-magic"],
    E["tcpcrypt-bad-length"],
    E["tcpcrypt-truncated"],
    E["tcpcrypt-no-ciphers"],
    E["tcpcrypt-unknown-aead"],
    E["tcpcrypt-bad-pubkey"],
    E["init-no-psh"],
    E["init-ignored-nonempty"],
    E["init2-cipher-not-offered"],
    E["pubkey-uncompressed"],
    E["pubkey-invalid"],
    E["tcpcrypt-init-incomplete"],
    E["tcpcrypt-short-frame"],
    E["frame-reserved-bits"],
    E["tcpcrypt-frame-lost"],
    E["tcpcrypt-frame-truncated"],
    E["tcpcrypt-resync"],
    E["tcpcrypt-resync-failed"],
    E["tcpcrypt-after-fallback"],
    E["frame-tag-failed"],
    E["tcpcrypt-wrong-key"],
    E["tcpcrypt-no-key-for-frame"],
    E["fin-without-finp"],
    E["frames-after-finp"],
    E["rekey-not-answered"],
    E["rekey-empty-repeated"],
    E["resume-nonce-too-long"],
    E["resume-duplicate-suboption"],
    E["resume-unsolicited"],
    E["resume-multiple-suboptions"],
    E["resume-identifier-reused"],
    E["tcpcrypt-no-fin-frame"],
    E["plaintext-reserved-bits"],
    E["tcpcrypt-urgent"],
    E["tcpcrypt-decrypted"],
    E["tcpcrypt-no-keys"],
    E["keylog-embedded-unreadable"],
    E["tcpcrypt-no-luaossl"],
    E["tcpcrypt-keylog-error"],
    E["tcpcrypt-plaintext-malformed"],
    E["keylog-wrong-key-length"],
    E["keylog-private-mismatch"],
    E["keylog-private-unusable"],
    E["keys-need-handshake"],
    E["capture-damaged"],
    E["packet-malformed"],
    E["ip-fragments-incomplete"],
    E["findings-capped"],
    E["unsupported-linktype"],
    E["connection-evicted"],
    E["connection-table-full"],
    E["tcpcrypt-lua-error"],
}
-- END GENERATED FIELDS

local p_eno, p_tc = P.tcpeno, P.tcpcrypt

-- ------------------------------------------------------------------ preferences
p_tc.prefs.keylog_file = Pref.string("Key log file", "",
    "tcpcrypt key log (TCPCRYPT_EPHEMERAL_PRIVATE / TCPCRYPT_SESSION_SECRET / TCPCRYPT_MASTER_KEY / " ..
    "TCPCRYPT_TRAFFIC_KEYS lines); default: the TCPCRYPT_KEYLOGFILE environment variable. Re-read " ..
    "when it grows. Key logs embedded in the pcapng file (tcpinc-analyze inject-secrets) are used too.")
p_tc.prefs.decrypt = Pref.bool("Decrypt frames", true, "Decrypt and verify frames with the key log")
p_tc.prefs.handoff = Pref.bool("Dissect application data", true,
    "Hand decrypted application data to the next dissector (Decode As, TCP ports, heuristics)")

function p_tc.prefs_changed()
    keylog_pref_path = p_tc.prefs.keylog_file or ""
end

-- Conformance rules a capture can show broken (tcpinc_analyze/conformance.py): the
-- expert info of such a finding comes with tcpeno.conformance and tcpeno.conformance.rfc.
local CONFORMANCE = {
    ["eno-multiple-syn"] = "RFC 8547 §4.1",
    ["eno-nonsyn-contents"] = "RFC 8547 §4.1",
    ["eno-global-reserved"] = "RFC 8547 §4.2",
    ["eno-global-repeated"] = "RFC 8547 §4.2",
    ["eno-synack-no-explicit-b"] = "RFC 8547 §4.2, §4.3",
    ["eno-length-byte"] = "RFC 8547 §4.4",
    ["eno-synack-multiple-teps"] = "RFC 8547 §4.5",
    ["eno-vacuous-reply"] = "RFC 8547 §4.6",
    ["eno-ack-missing"] = "RFC 8547 §4.6",
    ["eno-option-missing"] = "RFC 8547 §4.6",
    ["eno-after-fallback"] = "RFC 8547 §4.6",
    ["eno-syn-changed"] = "RFC 8547 §4.6",
    ["eno-syn-data"] = "RFC 8547 §4.7",
    ["eno-both-encodings"] = "RFC 8547 §11",
    ["tcpcrypt-bad-magic"] = "RFC 8547 §4.6",
    ["init-no-psh"] = "RFC 8548 §3.3",
    ["init2-cipher-not-offered"] = "RFC 8548 §3.3",
    ["init-ignored-nonempty"] = "RFC 8548 §4.1",
    ["pubkey-uncompressed"] = "RFC 8548 §5",
    ["pubkey-invalid"] = "RFC 8548 §5",
    ["frame-reserved-bits"] = "RFC 8548 §4.2",
    ["plaintext-reserved-bits"] = "RFC 8548 §4.2.1",
    ["frame-tag-failed"] = "RFC 8548 §3.6",
    ["retransmission-conflict"] = "RFC 8548 §3.6",
    ["fin-without-finp"] = "RFC 8548 §3.7",
    ["frames-after-finp"] = "RFC 8548 §3.7",
    ["rekey-not-answered"] = "RFC 8548 §3.8",
    ["rekey-empty-repeated"] = "RFC 8548 §3.8",
    ["resume-nonce-too-long"] = "RFC 8548 §3.5",
    ["resume-duplicate-suboption"] = "RFC 8548 §3.5",
    ["resume-unsolicited"] = "RFC 8548 §3.5",
    ["resume-multiple-suboptions"] = "RFC 8548 §3.5",
    ["resume-identifier-reused"] = "RFC 8548 §3.5",
}
M.CONFORMANCE = CONFORMANCE

-- ------------------------------------------------------------------ state
local conns = {}   -- tcp.stream -> connection state
local pkts = {}    -- frame number -> per-packet record (filled on the first pass only)
local cur_packet = 0
local CHAIN = {}   -- resume[i] -> { ss = ss[i], index = i, aead =, origin = conn id or nil }
local CHAINED = {} -- key-log ss[0] entries already expanded into CHAIN
local RESUMES = { proposed = {}, resumed = {} }
local last_refresh = -1

local NONE = setmetatable({}, { __newindex = function() error("NONE is read-only") end })

local function prec(num)
    local r = pkts[num]
    if not r then
        r = { pdus = NONE, experts = NONE }
        pkts[num] = r
    end
    return r
end

-- opts.conf = false: not a conformance violation here (e.g. a conflicting retransmission
-- outside tcpcrypt); opts.conn: the connection, for frame-tag-failed's verdict at display.
local function note(packet, code, msg, opts)
    -- in one pass an earlier packet has been shown already: the note goes on this one
    if not KEEP_RECORDS and packet and packet < cur_packet then packet = cur_packet end
    local r = prec(packet or cur_packet)
    if r.experts == NONE then r.experts = {} end
    if #r.experts < 64 then
        r.experts[#r.experts + 1] = { code = code, msg = msg, conf = opts and opts.conf, conn = opts and opts.conn }
    end
end

local ARROW = { ab = "A->B", ba = "B->A" }

-- ------------------------------------------------------------------ stream reassembly
local SEQ_MOD, HALF = 4294967296, 2147483648
local RECENT_WINDOW, PENDING_LIMIT = 65536, 4194304

local Stream = {}
Stream.__index = Stream

local function new_stream(label)
    return setmetatable({ base = nil, next = 0, pending = {}, pending_bytes = 0, chunks = {}, head = 1, recent_len = 0,
                          consumer = nil, label = label, max_ack = 0, ooo = {}, holes = {},
                          tc = false }, Stream)
end

function Stream:start(seq) self.base = seq % SEQ_MOD end

function Stream:offset_of(seq)
    if not self.base then self.base = seq % SEQ_MOD end
    local rel = (seq - self.base) % SEQ_MOD
    local delta = ((rel - self.next % SEQ_MOD + HALF) % SEQ_MOD) - HALF
    return self.next + delta
end

function Stream:find(code, msg, packet)
    -- a conflicting retransmission breaks RFC 8548 §3.6 only while tcpcrypt runs
    note(packet, code, (ARROW[self.label] or self.label) .. ": " .. msg, { conf = self.tc })
end

function Stream:conflict(off, packet)
    self:find("retransmission-conflict", "retransmitted bytes at offset " .. istr(off) ..
        " differ from the first copy (possible injection; the first copy is used)", packet)
end

-- The last RECENT_WINDOW bytes delivered, kept as the delivered chunks (joined only when a
-- retransmission is compared: appending to one string would copy the window per packet).
function Stream:recent_bytes()
    local chunks = self.chunks
    if self.head > 1 or #chunks > 1 then
        local joined = table.concat(chunks, "", self.head)
        self.chunks, self.head = { joined }, 1
    end
    return self.chunks[1] or ""
end

function Stream:compare(off, payload, packet, whole)
    local recent = self:recent_bytes()
    local start = self.next - #recent
    local lo = off > start and off or start
    local hi = off + #payload
    if lo < hi and ssub(recent, lo - start + 1, hi - start) ~= ssub(payload, lo - off + 1) then
        self:conflict(lo, packet)
        return
    end
    if whole and not (#payload <= 1 and off == self.next - 1) then
        self:find("tcp-retransmission", "retransmission of " .. istr(#payload) .. " bytes at offset " .. istr(off), packet)
    end
end

function Stream:deliver(off, payload, packet)
    self.next = off + #payload
    local chunks = self.chunks
    chunks[#chunks + 1] = payload
    self.recent_len = self.recent_len + #payload
    while self.recent_len - #chunks[self.head] >= RECENT_WINDOW do
        self.recent_len = self.recent_len - #chunks[self.head]
        chunks[self.head] = false
        self.head = self.head + 1
    end
    if self.head > 64 then
        local keep = {}
        for i = self.head, #chunks do keep[#keep + 1] = chunks[i] end
        self.chunks, self.head = keep, 1
    end
    if self.consumer then self.consumer:data(off, payload, packet) end
end

local function min_key(t)
    local m = nil
    for k in pairs(t) do if m == nil or k < m then m = k end end
    return m
end

function Stream:drain(filled)
    while true do
        local first = min_key(self.pending)
        if first == nil or first > self.next then return end
        local item = self.pending[first]
        self.pending[first] = nil
        self.pending_bytes = self.pending_bytes - #item[1]
        local ooo_packet = self.ooo[first]
        self.ooo[first] = nil
        if filled and ooo_packet then
            self:find("tcp-out-of-order", "segment at offset " .. istr(first) .. " arrived before the bytes ahead of it", ooo_packet)
        end
        local payload = item[1]
        local last = first + #payload
        if last <= self.next then
            self:compare(first, payload, item[2], false)
        else
            if first < self.next then
                self:compare(first, ssub(payload, 1, self.next - first), item[2], false)
                payload = ssub(payload, self.next - first + 1)
            end
            self:deliver(self.next, payload, cur_packet)
        end
    end
end

function Stream:declare_gap(upto)
    local size = upto - self.next
    if size <= 0 then self:drain(false) return end
    local cause = self.holes[self.next] and " (snaplen truncation)" or ""
    self:find("tcp-gap", istr(size) .. " bytes at offset " .. istr(self.next) .. " are not in the capture" .. cause, nil)
    if self.consumer then self.consumer:gap(self.next, size) end
    self.next = upto
    self.chunks, self.head, self.recent_len = {}, 1, 0
    for off in pairs(self.ooo) do if off <= upto then self.ooo[off] = nil end end
    self:drain(false)
end

function Stream:segment(seq, payload, packet, missing)
    if #payload == 0 and missing == 0 then return nil end
    local off = self:offset_of(seq)
    local seg_off = off
    local last = off + #payload
    if missing > 0 then self.holes[last] = true end
    if last <= self.next then
        if #payload > 0 then self:compare(off, payload, packet, true) end
        return seg_off
    end
    if off < self.next then
        self:compare(off, ssub(payload, 1, self.next - off), packet, false)
        payload = ssub(payload, self.next - off + 1)
        off = self.next
    end
    if off == self.next then
        self:deliver(off, payload, packet)
        self:drain(true)
        return seg_off
    end
    local existing = self.pending[off]
    if existing and #existing[1] >= #payload then
        if ssub(existing[1], 1, #payload) ~= payload then
            self:conflict(off, packet)
        else
            self:find("tcp-retransmission", "retransmission of " .. istr(#payload) .. " bytes at offset " .. istr(off), packet)
        end
        return seg_off
    end
    if existing then self.pending_bytes = self.pending_bytes - #existing[1] end
    self.pending[off] = { payload, packet }
    self.pending_bytes = self.pending_bytes + #payload
    self.ooo[off] = packet
    if self.pending_bytes > PENDING_LIMIT then self:declare_gap(min_key(self.pending)) end
    return seg_off
end

function Stream:finish()
    while next(self.pending) do self:declare_gap(min_key(self.pending)) end
end

function Stream:ack(ackno)
    if not self.base then return end
    local off = self:offset_of(ackno)
    if off <= self.max_ack then return end
    self.max_ack = off
    local first = min_key(self.pending)
    if first and off > self.next then
        self:declare_gap(first < off and first or off)
    end
end

-- ------------------------------------------------------------------ framing states
local S_INIT, S_FRAMES, S_RESYNC, S_DONE = 0, 1, 2, 3
local INIT1_MAGIC, INIT2_MAGIC = 0x15101a0e, 0x097105e0
local RESYNC_SEARCH, RESYNC_CHAIN = 65536, 3

-- ------------------------------------------------------------------ rekey obligations (§3.8)
-- From the wire alone: the rekey bit and clen are in the clear, and acknowledgment numbers
-- say what a host had received when it sent a segment (tcpinc_analyze/analysis/rekey_watch.py).
local PEER = { ab = "ba", ba = "ab" }
local Watch = {}
Watch.__index = Watch

local function new_watch()
    return setmetatable({ active = false, gen = { ab = 0, ba = 0 }, rekey_frames = { ab = {}, ba = {} },
                          obligations = { ab = {}, ba = {} }, segments = { ab = {}, ba = {} },
                          sent_end = { ab = 0, ba = 0 }, tcp_fin = { ab = false, ba = false },
                          finp_offset = {}, empty_outstanding = {}, fin_packet = {} }, Watch)
end

function Watch:finp(dir, offset)
    if self.finp_offset[dir] == nil then self.finp_offset[dir] = offset end
end

function Watch:segment(dir, start, stop, ack, fin, packet)
    local segs = self.segments[dir]
    segs[#segs + 1] = { start, stop, ack }
    if #segs > 256 then table.remove(segs, 1) end
    local from_offset = math.max(start, self.sent_end[dir])
    self.sent_end[dir] = math.max(self.sent_end[dir], stop)
    if ack then
        for _, fr in ipairs(self.rekey_frames[PEER[dir]]) do
            if not fr.acked and fr.stop <= ack then
                fr.acked = true
                local exempt = self.tcp_fin[dir] or (self.finp_offset[dir] ~= nil and self.finp_offset[dir] < from_offset)
                if self.gen[dir] < fr.generation and not exempt then
                    local ob = self.obligations[dir]
                    ob[#ob + 1] = { required = fr.generation, from_offset = from_offset, evidence = packet, rekey_packet = fr.packet }
                end
            end
        end
    end
    if fin then
        self.tcp_fin[dir] = true
        if #self.obligations[dir] > 0 and not self.fin_packet[dir] then self.fin_packet[dir] = packet end
    end
end

function Watch:remote_known(dir, offset)
    local segs = self.segments[dir]
    for i = #segs, 1, -1 do
        local s = segs[i]
        if s[1] <= offset and offset < s[2] then
            if not s[3] then return nil end
            local g = 0
            for _, fr in ipairs(self.rekey_frames[PEER[dir]]) do
                if fr.stop <= s[3] and fr.generation > g then g = fr.generation end
            end
            return g
        end
    end
    return nil
end

-- Frames queued under the old key may precede the answer ("immediately" is not judged
-- by stream order): a host that closes its side with the answer owed breaks the rule.
function Watch:frame(dir, f)
    local rekey = f.control % 2 == 1
    if not rekey then
        -- frames queued under the old key may precede the answer; they show the host was
        -- still sending frames (not exempt by an earlier FINp frame)
        for _, ob in ipairs(self.obligations[dir]) do
            if ob.from_offset <= f.stream_offset then ob.frames_after = (ob.frames_after or 0) + 1 end
        end
        return
    end
    -- a rekey frame raises its sender's generation by one: it settles the answers owed
    -- up to that generation
    local pending, kept = self.obligations[dir], {}
    for _, ob in ipairs(pending) do
        if not (ob.from_offset <= f.stream_offset and ob.required <= f.generation) then kept[#kept + 1] = ob end
    end
    self.obligations[dir] = kept
    self.active = true
    if f.generation > self.gen[dir] then self.gen[dir] = f.generation end
    local list = self.rekey_frames[dir]
    list[#list + 1] = { stop = f.stream_offset + 3 + f.length, generation = f.generation, packet = f.packet }
    if f.length == 17 then
        local remote = self:remote_known(dir, f.stream_offset)
        if remote == nil or f.generation <= remote then return end
        local outstanding = self.empty_outstanding[dir]
        if outstanding ~= nil and remote < f.generation - 1 then
            note(f.packet, "rekey-empty-repeated", ARROW[dir] .. ": a second empty rekey frame (generation " ..
                istr(f.generation) .. ") while the one for generation " .. istr(outstanding) ..
                " is still unanswered as far as the sender knew (peer generation " .. istr(remote) .. ")")
        end
        self.empty_outstanding[dir] = f.generation
    end
end

-- ------------------------------------------------------------------ tcpcrypt framing
local Dir = {}
Dir.__index = Dir

local function new_dir(conn, label, mode, tep)
    return setmetatable({ conn = conn, label = label, mode = mode, tep = tep,
                          state = (mode == "frames") and S_FRAMES or S_INIT,
                          buf = "", buf_off = 0, first_packet = 0, packets = 0,
                          origin = (mode == "frames") and 0 or nil,
                          frames = 0, rekeys = 0, plain = false, reserved_reports = 0,
                          lost = 0, init_segs = {},
                          -- decryption state
                          gen = 0, base = nil, ok = 0, failed = 0, undecryptable = 0,
                          fin_seen = false, last_ok = false, queue = {}, queued = 0,
                          resync_gen = nil, app_log = {}, app_first = nil, app_skip = 0,
                          app_waiting = 0, app_need = 0 }, Dir)
end

function Dir:init_len() return self.origin or 0 end

function Dir:find(code, msg, packet)
    note(packet, code, (ARROW[self.label] or self.label) .. ": " .. msg)
end

function Dir:data(offset, chunk, packet)
    if self.state == S_DONE then return end
    if self.buf == "" then
        self.buf_off = offset
        self.first_packet = cur_packet
        self.packets = 0
    end
    self.buf = self.buf .. chunk
    self.packets = self.packets + 1
    self:process(false)
end

function Dir:gap(offset, size)
    if self.state == S_DONE then return end
    if self.state == S_INIT then
        local length = (#self.buf >= 8) and be32(self.buf, 5) or nil
        local name = (self.mode == "init1") and "Init1" or (self.mode == "init2") and "Init2" or "Init message"
        self:find("tcpcrypt-init-incomplete", name .. " is cut by a gap of " .. istr(size) .. " bytes at offset " .. istr(offset), nil)
        if length and offset + size <= self.buf_off + length then
            self.origin = self.buf_off + length
            self.state = S_RESYNC
        else
            self.state = S_DONE
        end
    elseif self.state == S_FRAMES then
        -- The next frame boundary is known when the cut frame's header is in hand (or the
        -- gap starts right at a boundary): resume there without a search if it lies past
        -- the gap; if it lies inside, the frame starting there is lost too.
        local boundary = self.buf_off
        if #self.buf > 0 then
            self.lost = self.lost + 1
            self:find("tcpcrypt-frame-lost", "frame at offset " .. istr(self.buf_off) .. " is cut by a gap of " .. istr(size) .. " bytes", nil)
            boundary = nil
            if #self.buf >= 3 then
                local length = be16(self.buf, 2)
                if length >= 17 then boundary = self.buf_off + 3 + length end
            end
        end
        self:lose_boundary(boundary, offset, size)
        self.state = S_RESYNC
    elseif self.state == S_RESYNC and self.resume_at then
        local boundary = self.resume_at
        self.resume_at = nil
        self:lose_boundary(boundary, offset, size)
    end
    self.buf = ""
    self.buf_off = offset + size
    self.first_packet = cur_packet
    self.packets = 0
end

-- a known frame start meets a gap: resume there, or count its frame as lost
function Dir:lose_boundary(boundary, offset, size)
    if boundary == nil or boundary < offset then return end
    if boundary >= offset + size then
        self.resume_at = boundary
    else
        self.lost = self.lost + 1
    end
end

-- the stream stopped on a frame boundary with nothing cut off
function Dir:clean()
    if self.ended_clean ~= nil then return self.ended_clean end
    return self.state == S_FRAMES and #self.buf == 0
end

-- end of the capture: report anything left half-parsed
function Dir:finish()
    self.ended_clean = self:clean()
    if self.state == S_RESYNC and #self.buf > 0 then self:process(true) end
    if self.state == S_INIT and #self.buf > 0 and not self.plain then
        self:find("tcpcrypt-init-incomplete", "stream ends inside the Init message (" .. istr(#self.buf) .. " bytes)", nil)
    elseif self.state == S_FRAMES and #self.buf > 0 then
        self.lost = self.lost + 1
        self:find("tcpcrypt-frame-truncated", "stream ends inside a frame at offset " .. istr(self.buf_off) ..
            " (" .. istr(#self.buf) .. " bytes present)", nil)
    end
    self.buf = ""
end

function Dir:process(at_end)
    local guard = 0
    while guard < 100000 do
        guard = guard + 1
        local more
        if self.state == S_INIT then more = self:init_step()
        elseif self.state == S_FRAMES then more = self:frame()
        elseif self.state == S_RESYNC then more = self:resync(at_end)
        else self.buf = "" return end
        if not more then return end
    end
end

function Dir:emit(kind, len, extra)
    local r = prec(cur_packet)
    local pdu = extra or {}
    pdu.kind, pdu.dir, pdu.stream_offset = kind, self.label, self.buf_off
    pdu.raw = ssub(self.buf, 1, len)
    pdu.first_packet = self.first_packet
    pdu.packet = cur_packet
    pdu.segments = self.packets
    pdu.d = self
    if r.pdus == NONE then r.pdus = {} end
    r.pdus[#r.pdus + 1] = pdu
    if KEEP_RECORDS and self.first_packet ~= cur_packet and self.first_packet > 0 then
        prec(self.first_packet).continued_in = prec(self.first_packet).continued_in or cur_packet
    end
    self.buf = ssub(self.buf, len + 1)
    self.buf_off = self.buf_off + len
    self.first_packet = cur_packet
    self.packets = (#self.buf > 0) and 1 or 0
    return pdu
end

function Dir:init_step()
    if self.mode == "resume-or-init" then
        -- the 2016 daemon's resumption: frames from the first byte, unless this direction's
        -- Init magic says B refused to resume
        if #self.buf < 4 then return false end
        local magic = be32(self.buf, 1)
        if magic == INIT1_MAGIC or magic == INIT2_MAGIC then
            self.mode = (self.label == "ab") and "init1" or "init2"
        else
            self.mode, self.state, self.origin = "frames", S_FRAMES, self.buf_off
            return true
        end
    end
    if #self.buf < 8 then return false end
    local magic, length = be32(self.buf, 1), be32(self.buf, 5)
    if self.mode == "detect" then
        if magic == INIT1_MAGIC then self.mode = "init1"
        elseif magic == INIT2_MAGIC then self.mode = "init2"
        else
            self.plain = true
            self.state = S_DONE
            return false
        end
        self.conn:detected(self)
    end
    local is1 = self.mode == "init1"
    local name = is1 and "Init1" or "Init2"
    local expected = is1 and INIT1_MAGIC or INIT2_MAGIC
    if magic ~= expected then
        self:find("tcpcrypt-bad-magic", sfmt("stream starts with 0x%08x, expected the %s magic 0x%08x: once ENO has " ..
            "negotiated tcpcrypt, the data stream must follow it (no plaintext application data)", magic, name, expected), self.first_packet)
        self.state = S_DONE
        return false
    end
    if length < 9 or length > 65536 then
        self:find("tcpcrypt-bad-length", name .. " message_len " .. istr(length) .. " outside 9..65536", self.first_packet)
        self.state = S_DONE
        return false
    end
    if #self.buf < length then return false end
    local msg = ssub(self.buf, 1, length)
    if not self.tep then self.tep = infer_tep(msg, is1) end
    local m = parse_init(msg, is1, self.tep)
    for _, f in ipairs(m.findings) do self:find(f[1], f[2], self.first_packet) end
    if not m.failed then
        local problem = validate_public(self.tep, m.pubkey)
        if problem then
            self:find("pubkey-invalid", name .. " public key is invalid: " .. problem .. " (the receiver must abort)", self.first_packet)
        end
    end
    self.init = m
    self.init_raw = msg
    self.dialect = m.dialect
    local pdu = self:emit(is1 and "init1" or "init2", length, { init = m })
    self.origin = self.buf_off
    self.state = S_FRAMES
    self.conn:on_init(self, pdu)
    return true
end

function Dir:frame()
    if #self.buf < 3 then return false end
    local control, length = sbyte(self.buf, 1), be16(self.buf, 2)
    if length < 17 then
        self:find("tcpcrypt-short-frame", "frame length " .. istr(length) .. " at offset " .. istr(self.buf_off) ..
            " cannot hold a tag and flags (minimum 17); resynchronising", self.first_packet)
        self.state = S_RESYNC
        return true
    end
    if #self.buf < 3 + length then return false end
    if control >= 2 and self.reserved_reports < 5 then
        self.reserved_reports = self.reserved_reports + 1
        self:find("frame-reserved-bits", sfmt("frame at offset %s has control 0x%02x: reserved cres bits set (must be sent as zero)",
            istr(self.buf_off), control), self.first_packet)
    end
    self.frames = self.frames + 1
    if control % 2 == 1 then self.rekeys = self.rekeys + 1 end
    local pdu = self:emit("frame", 3 + length, { control = control, length = length, number = self.frames,
                                                  init_len = self:init_len(), wire_gen = self.rekeys })
    local w = self.conn.watch
    if w then
        w:frame(self.label, { control = control, length = length, stream_offset = pdu.stream_offset,
                              generation = self.rekeys, packet = cur_packet })
    end
    self.conn:on_frame(self, pdu)
    return true
end

-- cres_ok: with keys the tag decides, and receivers ignore cres (RFC 8548 §4.2)
function Dir:plausible(pos, cres_ok) -- pos 0-based in buf
    if pos + 3 > #self.buf then return nil end
    local control, length = sbyte(self.buf, pos + 1), be16(self.buf, pos + 2)
    if (control >= 2 and not cres_ok) or length < 17 then return nil end
    return length
end

function Dir:candidate(pos, at_end)
    if self.origin and self.buf_off + pos < self.origin then return false end
    local length = self:plausible(pos, self.conn.keys ~= nil)
    if not length then
        if pos + 3 > #self.buf and not at_end then return nil end
        return false
    end
    local last = pos + 3 + length
    if last <= #self.buf then
        local verdict = self.conn:authenticates(self, { stream_offset = self.buf_off + pos, init_len = self:init_len(),
            control = sbyte(self.buf, pos + 1), length = length, body = ssub(self.buf, pos + 4, last) })
        if verdict ~= nil then return verdict end
    end
    if sbyte(self.buf, pos + 1) >= 2 then return false end -- only a tag vouches for set cres bits
    local chain = 0
    while chain < RESYNC_CHAIN do
        if last == #self.buf and at_end then return true end
        if last + 3 > #self.buf then
            if at_end then return false end
            return nil
        end
        length = self:plausible(last)
        if not length then return false end
        chain = chain + 1
        last = last + 3 + length
    end
    return true
end

function Dir:resync(at_end)
    if self.resume_at then
        local skip = math.min(#self.buf, self.resume_at - self.buf_off)
        self.buf = ssub(self.buf, skip + 1)
        self.buf_off = self.buf_off + skip
        if self.buf_off < self.resume_at then return false end
        self.resume_at = nil
        self.first_packet = cur_packet
        self.packets = 1
        self.state = S_FRAMES
        return true
    end
    if self.origin and self.buf_off < self.origin then
        local skip = math.min(#self.buf, self.origin - self.buf_off)
        self.buf = ssub(self.buf, skip + 1)
        self.buf_off = self.buf_off + skip
        if self.buf_off < self.origin then return false end
    end
    local limit = math.min(#self.buf, RESYNC_SEARCH)
    for pos = 0, limit - 1 do
        local verdict = self:candidate(pos, at_end)
        if verdict == nil then return false end
        if verdict then
            if pos > 0 then
                self:find("tcpcrypt-resync", "resynchronised at offset " .. istr(self.buf_off + pos) ..
                    " after skipping " .. istr(pos) .. " bytes", nil)
            end
            self.buf = ssub(self.buf, pos + 1)
            self.buf_off = self.buf_off + pos
            self.first_packet = cur_packet
            self.packets = 1
            self.state = S_FRAMES
            return true
        end
    end
    if #self.buf >= RESYNC_SEARCH + RESYNC_CHAIN * (3 + 65535) or at_end then
        self:find("tcpcrypt-resync-failed", "no frame boundary found in " .. istr(limit) ..
            " bytes after offset " .. istr(self.buf_off) .. "; the rest of this direction is not delimited", nil)
        self.state = S_DONE
    end
    return false
end

-- ------------------------------------------------------------------ connections
local Conn = {}
Conn.__index = Conn

local function ep_text(addr, port)
    if string.find(addr, ":", 1, true) then return "[" .. addr .. "]:" .. istr(port) end
    return addr .. ":" .. istr(port)
end

local function new_conn(id, src, dst, x_is_src)
    return setmetatable({ id = id, x = x_is_src and src or dst, y = x_is_src and dst or src,
                          syn = {}, synack = {}, simultaneous = false, a_is_x = true,
                          handshake_seen = true, neg = nil, streams = {}, tc = {}, packets = 0,
                          nsyn = 0, legacy = false, fin = {}, rst = nil, notes = {},
                          nonsyn_from = {}, nonsyn_eno = {}, eno_phase_done = false,
                          after_fallback = {}, keys = nil, hopeless_gen = nil, base = nil, inits = {} }, Conn)
end

function Conn:side_is_a(from_x) return from_x == self.a_is_x end
function Conn:label(from_x) return self:side_is_a(from_x) and "ab" or "ba" end
function Conn:closed() return self.rst ~= nil or (self.fin[true] ~= nil and self.fin[false] ~= nil) end

function Conn:note_once(key, packet, code, msg)
    if self.notes[key] then return end
    self.notes[key] = true
    note(packet, code, msg)
end

-- the active opener is x unless the capture starts after its SYN
function Conn:active_is_x()
    return self.syn[true] ~= nil or not (self.synack[false] ~= nil and self.synack[true] == nil)
end

-- Every ENO option of a segment, whole (RFC or experimental encoding); a TCP option walk
-- that stops at an ENO kind gives a malformed option, so ENO fails with that reason.
function Conn:segment_eno(opts, flags, packet)
    local list, problems, bad = walk_options(opts or "")
    for _, p in ipairs(problems) do note(packet, "tcp-option-malformed", p) end
    local found, legacy, tfo, kinds, nkinds = {}, false, nil, {}, 0
    for _, o in ipairs(list) do
        if o.kind == 70 then legacy = true elseif o.kind == 34 then tfo = o.data
        elseif o.kind == 254 and o.data:sub(1, 2) == "\249\137" then tfo = o.data:sub(3) end  -- pre-RFC TFO (kind 254, magic 0xF989), RFC 8547 §4.7
        if o.kind == 69 or o.kind == 253 or o.kind == 254 then
            local opt = decode_eno(o.kind, o.data)
            if opt then
                if o.kind == 69 and looks_legacy(o.data, flags, self.legacy) then
                    legacy = true
                else
                    if not kinds[opt.encoding] then kinds[opt.encoding] = true nkinds = nkinds + 1 end
                    found[#found + 1] = opt
                end
            end
        end
    end
    if bad == 69 or bad == 253 or bad == 254 then
        found[#found + 1] = { encoding = (bad == 69) and "rfc" or "experimental", kind = bad, raw = "",
                              contents = "", subs = {}, findings = {}, malformed = true }
    end
    if nkinds == 2 then
        note(packet, "eno-both-encodings", "option 69 and option 253 with ExID 0x454E in one segment (hosts must not send both)")
    end
    return { options = found, legacy = legacy, tfo = tfo }
end

function Conn:resumption_rules(option, packet)
    local resumes, total, order = {}, 0, {}
    for _, sub in ipairs(opt_teps(option)) do
        if TEPS[sub.tep] then
            local kind = tcpcrypt_kind(sub)
            if kind == "invalid" then
                note(packet, "resume-nonce-too-long", sfmt("resumption suboption for TEP 0x%02x carries %d data bytes: a 9-byte identifier half and a nonce of at most 8 bytes allow 17", sub.tep, #(sub.data or "")))
            elseif kind == "resume" then
                if not resumes[sub.tep] then order[#order + 1] = sub.tep end
                resumes[sub.tep] = (resumes[sub.tep] or 0) + 1
                total = total + 1
            end
        end
    end
    for _, tep in ipairs(order) do
        if resumes[tep] > 1 then
            note(packet, "resume-duplicate-suboption", sfmt("%d resumption suboptions for TEP 0x%02x in one SYN (at most one per TEP)", resumes[tep], tep))
        end
    end
    if total > 1 then
        note(packet, "resume-multiple-suboptions", istr(total) .. " resumption suboptions in one SYN (should be at most one)")
    end
end

-- The ENO options of a SYN or SYN-ACK, with the SYN-only rules (§4.1, §4.4, §4.7).
function Conn:syn_eno(info)
    local got = self:segment_eno(info.opts, info.flags, info.packet)
    local se = { options = got.options, packet = info.packet }
    if #got.options > 1 then
        note(info.packet, "eno-multiple-syn", istr(#got.options) .. " ENO options in one SYN: the receiver must behave as if there were none and disable encryption")
    end
    for _, option in ipairs(got.options) do
        local details = {}
        for _, f in ipairs(option.findings) do
            note(info.packet, f[1], f[2])
            details[#details + 1] = f[2]
        end
        if option.malformed then
            local detail = #details > 0 and table.concat(details, "; ") or ("kind " .. istr(option.kind) .. " with a bad TCP option length")
            note(info.packet, "eno-malformed", "ill-formed ENO option: " .. detail .. "; the option is ignored and ENO fails")
        end
        self:resumption_rules(option, info.packet)
    end
    local option = syn_option(se)
    if option and not option.malformed then
        if got.tfo and #got.tfo > 0 then
            note(info.packet, "eno-syn-data", "a SYN with ENO carries a non-empty TCP Fast Open option")
        end
        local teps = opt_teps(option)
        local syn_tep = teps[#teps] and teps[#teps].tep or nil
        if info.data_len > 0 and (syn_tep == nil or TEPS[syn_tep]) then
            note(info.packet, "eno-syn-data", "a SYN with ENO carries " .. istr(info.data_len) ..
                " data bytes although its SYN TEP (" .. (syn_tep and sfmt("0x%02x", syn_tep) or "none") ..
                ") defines no SYN data (tcpcrypt defines none); the receiver must discard them")
        end
    end
    return se, got.legacy
end

local function raw_eno(se)
    local parts = {}
    for i, o in ipairs(se.options) do parts[i] = tohex(o.raw) end
    return table.concat(parts, "|")
end

function Conn:compare_retransmission(prev, info, se, bare)
    if raw_eno(prev.eno) == raw_eno(se) then return end
    if bare and syn_present(prev.eno) and not syn_present(se) then
        note(info.packet, "eno-dropped-on-retransmission", "the SYN retransmitted in packet " .. istr(info.packet) ..
            " drops the ENO option of packet " .. istr(prev.packet) .. ": the active opener disabled ENO (allowed)")
        return
    end
    note(info.packet, "eno-syn-changed", "the retransmitted " .. (bare and "SYN" or "SYN-ACK") .. " in packet " ..
        istr(info.packet) .. " changes the SYN-form ENO option of packet " .. istr(prev.packet))
end

function Conn:on_syn(info, from_x)
    local se, legacy = self:syn_eno(info)
    local prev = self.syn[from_x]
    if prev and prev.isn == info.seq then self:compare_retransmission(prev, info, se, true) end
    if not prev then self.nsyn = self.nsyn + 1 end
    self.syn[from_x] = { packet = info.packet, isn = info.seq, eno = se, data_len = info.data_len }
    self.legacy = self.legacy or legacy
    if self.nsyn == 2 then self.simultaneous = true end
end

function Conn:on_synack(info, from_x)
    local se, legacy = self:syn_eno(info)
    local prev = self.synack[from_x]
    if prev then
        if prev.isn == info.seq then self:compare_retransmission(prev, info, se, false) end
        return
    end
    local s = { packet = info.packet, isn = info.seq, eno = se, data_len = info.data_len }
    self.synack[from_x] = s
    self.legacy = self.legacy or legacy
    if self.simultaneous then
        local own = self.syn[from_x]
        if own and raw_eno(own.eno) ~= raw_eno(se) and syn_present(se) then
            note(info.packet, "eno-syn-changed", "simultaneous open: the SYN-ACK in packet " .. istr(info.packet) ..
                " does not repeat the ENO option of the same host's SYN (packet " .. istr(own.packet) .. ")")
        elseif own and raw_eno(own.eno) ~= raw_eno(se) then
            -- dropping ENO is allowed only when the received SYN made this host disable encryption
            local other = self.syn[not from_x]
            if other and negotiate(own.eno, other.eno, true, true, true).status == "negotiated" then
                note(info.packet, "eno-syn-changed", "simultaneous open: the SYN-ACK in packet " .. istr(info.packet) ..
                    " drops the ENO option of the same host's SYN (packet " .. istr(own.packet) ..
                    "), although the SYN it received (packet " .. istr(other.packet) .. ") left encryption possible")
            end
        end
    else
        self:check_passive_synack(s, from_x)
    end
    -- a receiver that discards SYN data acknowledges only the ISN (§4.7)
    -- (only a receiver known to implement ENO, its SYN-ACK carrying ENO, is bound, and only a
    -- tcpcrypt or no SYN TEP is known to define no SYN data)
    local syn = self.syn[not from_x]
    local syn_tep = nil
    local syn_opt = syn and syn_option(syn.eno)
    if syn_opt then
        local teps = opt_teps(syn_opt)
        if #teps > 0 then syn_tep = teps[#teps].tep end
    end
    if syn and syn.data_len > 0 and syn_present(syn.eno) and syn_present(se) and (syn_tep == nil or TEPS[syn_tep])
        and info.ack and (info.ack - syn.isn) % SEQ_MOD > 1 then
        note(info.packet, "eno-syn-data", "the SYN-ACK acknowledges " .. istr(syn.data_len) ..
            " SYN data bytes of a SYN with ENO; tcpcrypt defines no SYN data, so they must be discarded and not acknowledged")
    end
end

-- the passive opener's SYN-ACK rules (§4.2, §4.3, §4.5, §4.6)
function Conn:check_passive_synack(s, from_x)
    local option = syn_option(s.eno)
    local syn = self.syn[not from_x]
    local a_eno = syn and syn.eno
    if not option or option.malformed then return end
    local glob = opt_global(option)
    local a_opt = a_eno and syn_option(a_eno)
    local pre = option.encoding == "experimental" and not opt_b(option) and a_opt ~= nil and a_opt.encoding == "experimental"
    if (glob == nil or glob.byte % 2 == 0) and not pre then
        note(s.packet, "eno-synack-no-explicit-b", "the passive opener's SYN-ACK ENO option has " ..
            (glob and sfmt("global suboption 0x%02x", glob.byte) or "no global suboption") ..
            ": passive openers must send an explicit global suboption with b = 1")
    end
    -- a passive opener agrees to resume only a session A asked to resume with that TEP (RFC 8548 §3.5)
    if a_opt and not a_opt.malformed then
        local asked = {}
        for _, t in ipairs(opt_teps(a_opt)) do
            if TEPS[t.tep] and tcpcrypt_kind(t) == "resume" then asked[t.tep] = true end
        end
        for _, t in ipairs(opt_teps(option)) do
            if TEPS[t.tep] and tcpcrypt_kind(t) == "resume" and not asked[t.tep] then
                note(s.packet, "resume-unsolicited", sfmt("the passive opener sends a resumption suboption for TEP 0x%02x " ..
                    "although A's SYN proposed no resumption with it: a host agrees to resume only a session it is asked to", t.tep))
            end
        end
    end
    local teps = opt_teps(option)
    if #teps == 0 and not syn_present(a_eno) then
        note(s.packet, "eno-vacuous-reply", "vacuous ENO option in a SYN-ACK answering a SYN without ENO")
    end
    if #teps > 1 then
        note(s.packet, "eno-synack-multiple-teps", "the passive opener's SYN-ACK lists " .. istr(#teps) .. " TEPs (it should list only one, a valid one)")
    end
    if a_eno and #teps > 0 then
        local disabled = a_opt == nil or a_opt.malformed or (opt_b(a_opt) and opt_b(option))
        if not disabled then
            local offered = {}
            for _, t in ipairs(opt_teps(a_opt)) do offered[t.tep] = true end
            disabled = true
            for _, t in ipairs(teps) do if offered[t.tep] then disabled = false end end
        end
        if disabled then
            note(s.packet, "eno-after-fallback", "the passive opener sends a (non-vacuous) ENO option although the SYN it answers made ENO fail (no usable ENO option, same b bit, or no TEP in common)")
        end
    end
end

function Conn:first_second()
    if self.simultaneous then return self.syn[true], self.syn[false] end
    local ax = self:active_is_x()
    return self.syn[ax], self.synack[not ax]
end

function Conn:syn_of(a, a_is_x)
    if a_is_x == nil then a_is_x = self.a_is_x end
    local xs
    if a then xs = a_is_x else xs = not a_is_x end
    if self.simultaneous then return self.syn[xs] end
    if xs == self:active_is_x() then return self.syn[xs] end
    return self.synack[xs]
end

function Conn:decide_roles()
    local first_x = self.simultaneous or self:active_is_x()
    if self.neg then self.a_is_x = (first_x == self.neg.a_is_first) else self.a_is_x = first_x end
end

-- the outcome as the hosts see it from the SYNs alone (a stripped ACK cannot change it)
function Conn:view()
    local first, second = self:first_second()
    if not first or not second or self.legacy then return nil end
    return negotiate(first.eno, second.eno, true, self.simultaneous, true)
end

-- The outcome a packet may show: the decision once made (the final one after the first
-- pass), else a fallback (or ENO's absence) the SYN-form options alone already decide,
-- else nothing. Also
-- the roles (a_is_x), or nil while the capture has not shown them: a connection whose
-- handshake was not captured gets its roles from the first Init message.
function Conn:outcome()
    local neg = self.neg
    if neg then
        if neg.status == "unknown" and not self.handshake_seen and not self.roles_confirmed then
            return neg, nil
        end
        return neg, self.a_is_x
    end
    local v = self:view()
    if v and (v.status == "fallback" or v.status == "absent") then
        local first_x = self.simultaneous or self:active_is_x()
        return v, first_x == v.a_is_first
    end
    return nil, nil
end

-- Whether a sender's later segments are still checked for ENO options: both hosts know
-- from the SYNs that ENO fell back, the sender took part (its SYN-form segment had ENO),
-- and it has not been caught sending one yet (RFC 8547 §4.6)
function Conn:fallback_watch(from_x)
    if self.nonsyn_eno[from_x] == false then return false end
    local v = self:view()
    if not v or v.status ~= "fallback" then return false end
    local own
    if self.simultaneous or from_x == self:active_is_x() then own = self.syn[from_x] else own = self.synack[from_x] end
    return own ~= nil and syn_present(own.eno)
end

-- RFC 8547 §4.6 for non-SYN segments sent before their sender received one; at a side's
-- first segment after that, whether its later segments are watched for ENO options
-- (after a fallback: no further ENO options; see check_after_fallback)
function Conn:check_nonsyn_eno(got, from_x, packet)
    if next(self.syn) == nil and next(self.synack) == nil then self.eno_phase_done = true end
    if self.eno_phase_done then return nil end
    if self.nonsyn_from[not from_x] then
        if self.after_fallback[from_x] == nil then
            self.after_fallback[from_x] = self:fallback_watch(from_x)
        end
        if self.nonsyn_from[from_x] then self.eno_phase_done = true end
        return nil
    end
    local g = got()
    self.legacy = self.legacy or g.legacy
    local has = #g.options > 0
    local view = self:view()
    if not view then return has end
    local wants = view.status == "negotiated"
    local first_of_sender = self.nonsyn_from[from_x] == nil
    local active = (from_x == self:active_is_x()) and not self.simultaneous
    for _, option in ipairs(g.options) do
        if #option.contents > 0 and wants and TEPS[view.tep or 0] then
            note(packet, "eno-nonsyn-contents", "non-SYN-form ENO option with " .. istr(#option.contents) ..
                " bytes of contents: tcpcrypt gives them no meaning, so they must be sent empty")
        end
    end
    local state = self.nonsyn_eno[from_x]
    if wants and not has then
        if state == nil and active and first_of_sender then
            note(packet, "eno-ack-missing", "A's third segment (the handshake ACK) carries no ENO option although the SYN-ACK it answers carried a valid, compatible one (or a middlebox between A and the capture point stripped it)")
        elseif state then
            note(packet, "eno-option-missing", "a segment sent before its sender received any non-SYN segment carries no ENO option (every such segment must, until encryption is disabled)")
        end
        self.nonsyn_eno[from_x] = false
    elseif wants and state ~= false then
        self.nonsyn_eno[from_x] = true
    elseif has and state ~= false then
        note(packet, "eno-after-fallback", "an ENO option on a segment sent after its sender fell back to plain TCP (no further ENO options may be sent)")
        self.nonsyn_eno[from_x] = false
    end
    return has
end

-- RFC 8548 §3.5's once-only rules across the capture
local function resume_halves(se)
    local option = se and syn_option(se.eno)
    local out = {}
    if not option then return out end
    for _, sub in ipairs(opt_teps(option)) do
        if TEPS[sub.tep] and sub.data and tcpcrypt_kind(sub) == "resume" then out[#out + 1] = ssub(sub.data, 1, RESUME_HALF) end
    end
    return out
end

function Conn:check_resumes()
    local first, second = self:first_second()
    if not first then return end
    for _, half in ipairs(resume_halves(first)) do
        local earlier = RESUMES.proposed[half]
        if earlier and earlier[1] ~= self.id then
            note(first.packet, "resume-identifier-reused", "the SYN proposes resumption with identifier half " .. tohex(half) ..
                ", already proposed in packet " .. istr(earlier[2]) .. ": a host must propose the lowest i it has not used before")
        elseif not earlier then
            RESUMES.proposed[half] = { self.id, first.packet }
        end
    end
    local neg = self.neg
    if neg.status ~= "negotiated" or not neg.resumed or not second then return end
    local ours, theirs = resume_halves(first), resume_halves(second)
    if #ours == 0 or #theirs == 0 then return end
    local pair = (ours[1] < theirs[1]) and (ours[1] .. theirs[1]) or (theirs[1] .. ours[1])
    local earlier = RESUMES.resumed[pair]
    if earlier then
        note(second.packet, "resume-identifier-reused", "this connection resumes with the same identifier as the one of packet " ..
            istr(earlier[2]) .. ": the session secret ss[i] secures two connections")
    else
        RESUMES.resumed[pair] = { self.id, second.packet }
    end
end

function Conn:decide_eno(ack_has_eno, packet)
    if self.neg then return end
    local first, second = self:first_second()
    local eno_first = (self.legacy or not first) and EMPTY_SYN or first.eno
    local seen = first ~= nil and (second ~= nil or not syn_present(eno_first))
    if self.simultaneous then
        local s1, s2 = self.synack[true], self.synack[false]
        if s1 == nil or s2 == nil then ack_has_eno = nil
        else ack_has_eno = syn_present(s1.eno) and syn_present(s2.eno) end
    end
    self.ack_eno = ack_has_eno
    self.ack_packet = packet
    self.neg = negotiate(eno_first, second and second.eno or nil, ack_has_eno, self.simultaneous, seen)
    self:decide_roles()
    local neg = self.neg
    if seen then self:check_resumes() end
    if not seen then
        self.handshake_seen = false
        note(packet, "handshake-not-captured", (first and "B's SYN-ACK" or "A's SYN") ..
            " is not in the capture: roles and ENO outcome are inferred")
    end
    if neg.roles == "pre-rfc" then
        self.pre_rfc = true
        note(second and second.packet or packet, "pre-rfc-dialect", "pre-RFC experimental ENO: the SYN-ACK's b bit is 0 " ..
            "(no global suboption, or only the application-aware bit), so under RFC 8547 §4.3 both hosts have b = 0 (a role " ..
            "conflict); the pre-RFC drafts made the passive opener host B, and the handshake is judged by them" ..
            (neg.pre_rfc_resume and "; it resumes a cached session the 2016 way (a v = 1 identifier suboption answered by " ..
             "its identifier byte, frames without Init messages)" or ""))
    end
    if self.legacy then
        note(first and first.packet or packet, "legacy-tcpcrypt-option",
            "kind 69 is used as the pre-2015 tcpcrypt CRYPT option (with kind 70 MAC), not as ENO")
    end
    if neg.status == "fallback" then
        if neg.reason == "synack-without-eno" and not self.simultaneous then
            note(second and second.packet or packet, "eno-downgrade", "A's SYN offered ENO and B's SYN-ACK carries none: " ..
                "B lacks ENO, or ENO was stripped on the path (a downgrade to plain TCP)")
        end
        note(packet, "eno-fallback", "ENO fell back to plain TCP: " .. neg.reason)
    end
    self:setup_streams()
end

-- Ciphertext must not reach the port's plaintext dissector (HTTP on port 80 would show
-- it as a "continuation"). When a tcpcrypt connection appears, the tcpcrypt dissector takes
-- B's port in "tcp.port" and hands every other connection on that port to the dissector
-- that had it (see p_tc.dissector below), so other flows are unaffected.
--
-- What "tcp.port" held for each port when the plugin loaded (Wireshark's defaults): a
-- different dissector found there later is the user's Decode As, which then comes before
-- the heuristics for the plaintext. A Decode As made in the GUI after a port was claimed
-- replaces the claim; the next redissection (post.init) takes it back and notes the choice.
local claimed_ports, chosen_ports, DEFAULT_PORTS = {}, {}, {}
pcall(function()
    local tbl = DissectorTable.get("tcp.port")
    for port = 1, 65535 do
        local d = tbl:get_dissector(port)
        if d then DEFAULT_PORTS[port] = tostring(d) end
    end
end)

local function is_ours(d)
    if d == nil then return false end
    local ok, own = pcall(Dissector.get, "tcpcrypt")
    return ok and own ~= nil and tostring(d) == tostring(own)
end

local function note_port_choice(port, d)
    claimed_ports[port] = d or false
    chosen_ports[port] = d ~= nil and tostring(d) ~= DEFAULT_PORTS[port] or nil
end

local function claim_port(port)
    if not port or claimed_ports[port] ~= nil then return end
    local ok, tbl = pcall(DissectorTable.get, "tcp.port")
    if not ok or not tbl then return end
    local ok2, orig = pcall(tbl.get_dissector, tbl, port)
    note_port_choice(port, (ok2 and not is_ours(orig)) and orig or nil)
    pcall(tbl.add, tbl, port, P.tcpcrypt)
end

local function reclaim_ports()
    local ok, tbl = pcall(DissectorTable.get, "tcp.port")
    if not ok or not tbl then return end
    for port in pairs(claimed_ports) do
        local ok2, cur = pcall(tbl.get_dissector, tbl, port)
        if ok2 and not is_ours(cur) then
            note_port_choice(port, cur)
            pcall(tbl.add, tbl, port, P.tcpcrypt)
        end
    end
end

function Conn:setup_streams()
    local neg = self.neg
    local tep = neg.tep
    local modes = {}
    if neg.status == "negotiated" and neg.pre_rfc_resume then
        modes[true], modes[false] = "resume-or-init", "resume-or-init"
    elseif neg.status == "negotiated" and TEPS[tep or 0] then
        modes[true] = neg.resumed and "frames" or "init1"
        modes[false] = neg.resumed and "frames" or "init2"
    elseif neg.status == "unknown" then
        modes[true], modes[false] = "detect", "detect"
    elseif neg.reason == "ack-without-eno" then
        modes[true] = "detect"
    end
    if modes[true] or modes[false] then
        local b_ep = self.a_is_x and self.y or self.x
        claim_port(tonumber(string.match(b_ep, ":(%d+)$")))
        self.watch = self.watch or new_watch()
    end
    for _, a_side in ipairs({ true, false }) do
        local from_x = (a_side == self.a_is_x)
        local mode = modes[a_side]
        local label = a_side and "ab" or "ba"
        if mode then
            local d = new_dir(self, label, mode, TEPS[tep or 0] and tep or nil)
            local s = self.streams[from_x] or new_stream(label)
            s.consumer, s.label, s.tc = d, label, mode ~= "detect"
            d.track_init = (mode == "init1" or mode == "init2")
            self.streams[from_x] = s
            self.tc[from_x] = d
        else
            self.streams[from_x] = false
            self.tc[from_x] = nil
        end
    end
end

function Conn:start_stream(from_x, isn)
    local s = self.streams[from_x]
    if s == nil then
        s = new_stream("ab")
        self.streams[from_x] = s
    end
    if s and not s.base then s:start(isn + 1) end
end

function Conn:dir_of(label)
    for _, fx in ipairs({ true, false }) do
        local d = self.tc[fx]
        if d and d.label == label then return d end
    end
    return nil
end

-- Without a handshake, the side whose stream starts with Init1 is A.
function Conn:detected(d)
    self.roles_confirmed = true
    if (d.mode == "init1") == (d.label == "ab") then return end
    self.a_is_x = not self.a_is_x
    for _, fx in ipairs({ true, false }) do
        local label = (fx == self.a_is_x) and "ab" or "ba"
        local dd = self.tc[fx]
        if dd then dd.label = label end
        if self.streams[fx] then self.streams[fx].label = label end
    end
end

-- an Init message is complete: PSH rule (§3.3), cipher choice (§3.3), the 2016 dialect
function Conn:on_init(d, pdu)
    local m = d.init
    self.inits[m.is1 and 1 or 2] = m
    m.packet = cur_packet
    if d.track_init then
        d.track_init = false
        local last = d:init_len() - 1
        local covering = {}
        for _, s in ipairs(d.init_segs) do
            if s[1] <= last and last < s[2] then covering[#covering + 1] = s end
        end
        local psh = false
        for _, s in ipairs(covering) do psh = psh or s[3] end
        if #covering > 0 and not psh then
            note(covering[1][4], "init-no-psh", "the segment holding " .. (m.is1 and "Init1" or "Init2") ..
                "'s last byte (packet " .. istr(covering[1][4]) .. ") does not have PSH set")
        end
        d.init_segs = {}
    end
    if m.is1 and self.neg and self.neg.status == "fallback" then
        self:note_once("after-fallback", cur_packet, "tcpcrypt-after-fallback", "A sent a tcpcrypt Init1 although ENO " ..
            "fell back: A believes ENO succeeded (was ENO stripped from its ACK on the way?)")
    end
    local i1, i2 = self.inits[1], self.inits[2]
    if i1 and i2 and i1.ciphers and i2.cipher and not self.cipher_checked then
        self.cipher_checked = true
        local offered = false
        for _, c in ipairs(i1.ciphers) do if c == i2.cipher then offered = true end end
        if not offered then
            note(i2.packet, "init2-cipher-not-offered", sfmt("B chose %s (0x%04x), which A's Init1 did not offer (A must abort)",
                VALS.aead[i2.cipher] or "an unknown AEAD", i2.cipher))
        end
    end
    if m.dialect == "tcpcryptd-2016" and not self.pre_rfc then
        self:note_once("dialect", cur_packet, "pre-rfc-dialect", "the 2016 tcpcryptd dialect (drafts eno-03 / tcpcrypt-02), " ..
            "judged by its own rules: one-byte sym_cipher identifiers and uncompressed points (RFC 8548 §4.1, §5)")
    end
    if m.dialect then self.dialect = m.dialect end
end

-- ---------------------------------------------------------------- decryption
-- Key sources, most capable first (tcpinc_analyze/decryption.py): a session secret (ss[0]
-- under N_A, ss[i] under resume[i]); an ephemeral private key (needs ECDH: not in Lua);
-- the resumption chain ss[0] -> ss[i] of a session known from the key log or decrypted
-- earlier in the capture; a master key mk[0]; generation-0 traffic keys.

-- resume[j] -> ss[j] for j = index+1 .. index+16; a capture-derived entry (with its AEAD)
-- replaces one known from the key log only
-- (index nil: a chain started from a resumed session's ss[i], i itself unknown)
local function add_chain(ss, index, aead, origin)
    if not ossl.ok then return end
    for step = 1, RESUME_DEPTH do
        ss = cprf(ss, C_NEXTK, K_LEN)
        local ident = cprf(ss, C_RESUME, RESUME_LEN)
        local old = CHAIN[ident]
        if not old or old.origin == nil then
            CHAIN[ident] = { ss = ss, index = index and (index + step) or nil, aead = aead, origin = origin }
        end
    end
end

local function chain_lookup(ident)
    local entry = CHAIN[ident]
    if entry then return entry end
    for id, ss in pairs(KEYLOG.secrets) do
        if #id == 32 and not CHAINED[id] then
            CHAINED[id] = true
            add_chain(ss, 0, nil, nil)
        end
    end
    return CHAIN[ident]
end

-- the traffic key (K || NR) a direction uses in a generation, nil when the source cannot
-- give it (traffic keys past generation 0, AEAD unknown)
local function source_key(src, gen, label)
    if not src.aead then return nil end
    local ab = (label == "ab") == src.ab_uses_k_ab
    local ck = (ab and "ab" or "ba") .. istr(gen)
    local cached = src.cache[ck]
    if cached ~= nil then return cached or nil end
    local key = false
    if src.mk0 then
        local mks = src.mks
        while #mks <= gen do mks[#mks + 1] = cprf(mks[#mks], C_REKEY, K_LEN) end
        key = traffic_key(mks[gen + 1], src.aead, ab)
    elseif src.traffic and gen == 0 then
        local k = src.traffic[ab and 1 or 2]
        if #k == AEAD_KEYLEN[src.aead] + NR_LEN then key = k end
    end
    src.cache[ck] = key
    return key or nil
end

local function set_aead(src, aead)
    src.aead, src.cache = aead, {}
end

local function open_frame(aead, tk, offset, control, clen, body)
    local klen = AEAD_KEYLEN[aead]
    if not klen or not tk or #tk ~= klen + NR_LEN then return nil end
    local nonce = frame_nonce(ssub(tk, klen + 1), offset)
    local ok, pt = pcall(aead_open, aead, ssub(tk, 1, klen), nonce, schar(control, floor(clen / 256), clen % 256), body)
    if ok and pt then return pt, nonce end
    return nil
end

local function frame_id_offset(stream_offset, init_len, base)
    if base == "after-init" then return stream_offset - init_len end
    return stream_offset
end

function Conn:set_source(src)
    src.cache, src.mks = {}, src.mk0 and { src.mk0 } or nil
    self.keys = src
    if src.aead then self:chain_from(src) end
    for _, fx in ipairs({ true, false }) do
        local d = self.tc[fx]
        if d and #d.queue > 0 then
            local q = d.queue
            d.queue, d.queued = {}, 0
            for _, pdu in ipairs(q) do self:decrypt(d, pdu) end
        end
    end
end

function Conn:chain_from(src)
    self.aead = src.aead
    if src.ss then
        if not (self.neg and self.neg.resumed) then
            add_chain(src.ss, 0, src.aead, self.id)
        else
            add_chain(src.ss, src.index, src.aead, self.resumes or self.id)
        end
    end
end

function Conn:from_ss(ss, sn, tep_byte, aead, from, ab_uses, index)
    self:set_source({ from = from, aead = aead, ss = ss, sn = sn, tep_byte = tep_byte,
                      mk0 = cprf(ss, C_REKEY .. sn, K_LEN), ab_uses_k_ab = ab_uses, index = index })
end

-- the resumption halves and nonces of a resumed connection, from both SYNs
function Conn:resume_view()
    local neg = self.neg
    local parts = {}
    for _, a in ipairs({ true, false }) do
        local syn = self:syn_of(a)
        local option = syn and syn_option(syn.eno)
        local sub = nil
        if option then
            for _, t in ipairs(opt_teps(option)) do
                if t.tep == neg.tep then sub = t break end
            end
        end
        if not sub or not sub.data or tcpcrypt_kind(sub) ~= "resume" then return nil end
        parts[#parts + 1] = { ssub(sub.data, 1, RESUME_HALF), ssub(sub.data, RESUME_HALF + 1) }
    end
    return { half_a = parts[1][1], nonce_a = parts[1][2], half_b = parts[2][1], nonce_b = parts[2][2] }
end

function Conn:resolve_resumed()
    local neg = self.neg
    local v = self:resume_view()
    if not v or not neg.tep_byte then return false end
    -- both orders of the halves: the one equal to resume[i] tells who was originally A
    for _, cand in ipairs({ { v.half_a .. v.half_b, true }, { v.half_b .. v.half_a, false } }) do
        local ident, a_was_a = cand[1], cand[2]
        local sn = a_was_a and (v.nonce_a .. v.nonce_b) or (v.nonce_b .. v.nonce_a)
        local entry = chain_lookup(ident)
        local aead = entry and entry.aead or nil
        if KEYLOG.secrets[ident] then
            self:from_ss(KEYLOG.secrets[ident], sn, neg.tep_byte, aead, "session_secret", a_was_a, nil)
            return true
        end
        if entry then
            self.resumes, self.resume_index = entry.origin, entry.index
            self:from_ss(entry.ss, sn, neg.tep_byte, aead, "resumption", a_was_a, entry.index)
            return true
        end
        if KEYLOG.masters[ident] then
            self:set_source({ from = "master_key", aead = aead, mk0 = KEYLOG.masters[ident], ab_uses_k_ab = a_was_a })
            return true
        end
        if KEYLOG.traffic[ident] then
            self:set_source({ from = "traffic_keys", aead = aead, traffic = KEYLOG.traffic[ident], ab_uses_k_ab = a_was_a })
            return true
        end
    end
    return false
end

function Conn:resolve_fresh(packet)
    local ab, ba = self:dir_of("ab"), self:dir_of("ba")
    local i1, i2 = ab and ab.init, ba and ba.init
    if not (i1 and i1.is1 and not i1.failed and i2 and not i2.is1 and not i2.failed) then return nil end
    local tep = (ab and ab.tep) or (ba and ba.tep)
    local aead = i2.cipher
    if not tep or not AEAD_KEYLEN[aead] then return false end
    local neg = self.neg
    local tep_byte = (neg and neg.tep_byte) or tep
    local n_a = i1.nonce
    if KEYLOG.secrets[n_a] then
        self:from_ss(KEYLOG.secrets[n_a], "", tep_byte, aead, "session_secret", true, nil)
        return true
    end
    for _, pair in ipairs({ { i1.pubkey, i2.pubkey }, { i2.pubkey, i1.pubkey } }) do
        local private = KEYLOG.privates[canonical_public(pair[1])]
        if private and self:from_private(tep, tep_byte, aead, private, pair[1], pair[2], ab, ba, packet) then
            return true
        end
    end
    if KEYLOG.masters[n_a] then
        self:set_source({ from = "master_key", aead = aead, mk0 = KEYLOG.masters[n_a], ab_uses_k_ab = true })
        return true
    end
    local tk = KEYLOG.traffic[n_a]
    if tk then
        if #tk[1] ~= AEAD_KEYLEN[aead] + NR_LEN then
            self:note_once("tklen", packet, "tcpcrypt-keylog-error", "logged traffic keys are " .. istr(#tk[1]) ..
                " bytes but " .. (VALS.aead[aead] or "this AEAD's") .. " traffic keys (K || NR) are " .. istr(AEAD_KEYLEN[aead] + NR_LEN))
            return false
        end
        self:set_source({ from = "traffic_keys", aead = aead, traffic = tk, ab_uses_k_ab = true })
        return true
    end
    return false
end

-- ss[0] from a logged ephemeral private key (RFC 8548 §3.3): ES by ECDH with the peer's
-- key, PRK = Extract(N_A, eno_transcript || Init1 || Init2 || ES), the transcript being
-- both SYN-form ENO options as they appeared (RFC 8547 §4.8).
function Conn:from_private(tep, tep_byte, aead, private, own, peer, ab, ba, packet)
    local compressed, other = public_of(tep, private)
    if not compressed then
        self:note_once("privunusable", packet, "keylog-private-unusable", "cannot use the logged private key: " .. tostring(other))
        return false
    end
    if compressed ~= own and other ~= own then
        self:note_once("privmismatch", packet, "keylog-private-mismatch", "the logged private key does not belong " ..
            "to the public key in the Init message (wrong key-log entry)")
        return false
    end
    local es, why = shared_secret(tep, private, peer)
    if not es then
        self:note_once("privunusable", packet, "keylog-private-unusable", "cannot use the logged private key: " .. tostring(why))
        return false
    end
    local sa, sb = self:syn_of(true), self:syn_of(false)
    local oa, ob = sa and syn_option(sa.eno), sb and syn_option(sb.eno)
    if not (oa and ob and ab and ba and ab.init_raw and ba.init_raw) then
        self:note_once("needhs", packet, "keys-need-handshake", "an ephemeral private key needs the ENO options " ..
            "of both SYNs (the transcript) and they are not in the capture; log the session secret")
        return false
    end
    local ss = hmac_sha256(ab.init.nonce, oa.raw .. ob.raw .. ab.init_raw .. ba.init_raw .. es)
    self:from_ss(ss, "", tep_byte, aead, "private_key", true, nil)
    return true
end

-- A tcpcrypt connection without keys while the capture file could not be followed: a
-- key log embedded in it would go unused, so say once how to get it out.
local function embedded_hint(packet)
    if SCAN.state ~= "unreadable" or SCAN.told then return end
    SCAN.told = true
    note(packet, "keylog-embedded-unreadable", "no keys; any key log embedded in this capture cannot be read here: " ..
        "run \"tcpinc-analyze extract-secrets CAPTURE\" into a file and set tcpcrypt.keylog_file (" ..
        tostring(SCAN.why) .. ")")
end

-- Try every way to get keys; true once they are known. A failed attempt is retried only
-- when the key log has grown.
function Conn:resolve(packet)
    if self.keys then return true end
    if not p_tc.prefs.decrypt then return false end
    if last_refresh ~= cur_packet then
        last_refresh = cur_packet
        keylog_refresh()
    end
    if self.hopeless_gen == KEYLOG.generation then return false end
    if keylog_empty() then
        self.hopeless_gen = KEYLOG.generation
        embedded_hint(packet)
        return false
    end
    if not ossl.ok then
        self:note_once("noossl", packet, "tcpcrypt-no-luaossl",
            "cannot decrypt: lua-luaossl is not available (" .. tostring(ossl.why):sub(1, 120) ..
            "); install the Debian package lua-luaossl")
        self.hopeless_gen = KEYLOG.generation
        return false
    end
    local got
    if self.neg and self.neg.resumed then got = self:resolve_resumed() else got = self:resolve_fresh(packet) end
    if got == nil then return false end -- the Init messages are not both in yet
    if not got then
        self.hopeless_gen = KEYLOG.generation
        embedded_hint(packet)
        local id = self.inits[1] and self.inits[1].nonce
        self:note_once("nokeys", packet, "tcpcrypt-no-keys", "no key-log entry matches this connection" ..
            (id and (" (N_A " .. ssub(tohex(id), 1, 16) .. "...)") or ""))
    end
    return got
end

function Conn:bases(d, init_len)
    local base = d.base or self.base
    if base then return { base } end
    if init_len > 0 then return { "tcp-stream", "after-init" } end
    return { "tcp-stream" }
end

-- candidate frames during resynchronisation: true/false when keys can tell
function Conn:authenticates(d, f)
    if not self:resolve(cur_packet) then return nil end
    local src = self.keys
    local rk = f.control % 2
    local start = d.gen + rk
    for g = start, start + 3 do
        local key = source_key(src, g, d.label)
        if not key then return nil end
        for _, base in ipairs(self:bases(d, f.init_len)) do
            if open_frame(src.aead, key, frame_id_offset(f.stream_offset, f.init_len, base), f.control, f.length, f.body or ssub(f.raw, 4)) then
                d.resync_gen = { f.stream_offset, g - rk }
                return true
            end
        end
    end
    return false
end

function Conn:on_frame(d, pdu)
    pdu.generation = d.rekeys
    if not self:resolve(pdu.first_packet) then
        if self.hopeless_gen ~= KEYLOG.generation and d.queued + pdu.length <= PENDING_LIMIT then
            d.queue[#d.queue + 1] = pdu
            d.queued = d.queued + pdu.length
        end
        return
    end
    self:decrypt(d, pdu)
end

-- a resumed session of unknown AEAD: the AEAD that opens this frame
function Conn:probe_aead(d, pdu)
    local src = self.keys
    for _, aead in ipairs(AEAD_ORDER) do
        set_aead(src, aead)
        local key = source_key(src, d.gen, d.label)
        if key and open_frame(aead, key, pdu.stream_offset, pdu.control, pdu.length, ssub(pdu.raw, 4)) then
            self.aead_probed = true
            self:chain_from(src)
            return true
        end
    end
    set_aead(src, nil)
    return false
end

function Conn:undecryptable(d, pdu, why)
    d.undecryptable = d.undecryptable + 1
    d.last_ok = false
    pdu.undecryptable = true
    note(pdu.packet, "tcpcrypt-no-key-for-frame", ARROW[d.label] .. ": frame at stream offset " ..
        istr(pdu.stream_offset) .. " cannot be decrypted: " .. why .. "; counted as undecryptable, not as a failure")
end

function Conn:decrypt(d, pdu)
    local src = self.keys
    if d.resync_gen and d.resync_gen[1] == pdu.stream_offset then
        d.gen = d.resync_gen[2]
        d.resync_gen = nil
    end
    if pdu.control % 2 == 1 then d.gen = d.gen + 1 end
    pdu.generation = d.gen
    if not src.aead and not self:probe_aead(d, pdu) then
        self:undecryptable(d, pdu, "no AEAD authenticates the frame with the resumed session's keys")
        return
    end
    local key = source_key(src, d.gen, d.label)
    if not key then
        self:undecryptable(d, pdu, "the key log gives no key for generation " .. istr(d.gen) ..
            " (traffic keys cover generation 0 only; log TCPCRYPT_MASTER_KEY or the session secret)")
        return
    end
    local pt, nonce = nil, nil
    local body = ssub(pdu.raw, 4)
    for _, base in ipairs(self:bases(d, pdu.init_len)) do
        local off = frame_id_offset(pdu.stream_offset, pdu.init_len, base)
        pt, nonce = open_frame(src.aead, key, off, pdu.control, pdu.length, body)
        if pt then
            if not d.base then
                d.base = base
                if not self.base then self.base = base elseif self.base ~= base then self.base = "mixed" end
            end
            pdu.offset, pdu.nonce = off, nonce
            break
        end
    end
    local arrow = ARROW[d.label]
    if d.base and not pdu.offset then pdu.offset = frame_id_offset(pdu.stream_offset, pdu.init_len, d.base) end
    d.last_ok = pt ~= nil
    if not pt then
        d.failed = d.failed + 1
        pdu.verified = false
        self.first_failed = self.first_failed or pdu
        note(pdu.packet, "frame-tag-failed", arrow .. ": frame at stream offset " .. istr(pdu.stream_offset) ..
            " (key generation " .. istr(d.gen) .. ") fails authentication; its bytes are not shown", { conn = self })
        return
    end
    local flags = sbyte(pt, 1)
    local data_at = 1
    if not flags or (floor(flags / 2) % 2 == 1 and #pt < 3) then
        d.failed = d.failed + 1
        d.last_ok = false
        pdu.verified = false
        note(pdu.packet, "tcpcrypt-short-frame", arrow .. ": decrypted frame too short for its flags and urgent fields")
        return
    end
    d.ok = d.ok + 1
    pdu.verified = true
    pdu.plaintext = pt
    pdu.flags = flags
    if floor(flags / 2) % 2 == 1 then
        pdu.urgent = be16(pt, 2)
        data_at = 3
    end
    pdu.data_at = data_at
    if flags >= 4 then
        note(pdu.packet, "plaintext-reserved-bits", sfmt("%s: plaintext flags 0x%02x set reserved fres bits (must be sent as zero)", arrow, flags))
    end
    if d.fin_seen then
        note(pdu.packet, "frames-after-finp", arrow .. ": frame at stream offset " .. istr(pdu.stream_offset) ..
            " follows the frame with FINp (FINp must be on the sender's last frame only)")
    end
    if flags % 2 == 1 and not d.fin_seen then
        d.fin_seen = true
        if self.watch then self.watch:finp(d.label, pdu.stream_offset) end
    end
    if pdu.urgent then
        local fo = frame_id_offset(pdu.stream_offset, pdu.init_len, d.base or "tcp-stream")
        note(pdu.packet, "tcpcrypt-urgent", arrow .. ": URGp frame, urgent field " .. istr(pdu.urgent) .. " (frame offset " ..
            istr(fo) .. " + urgent = " .. istr(fo + pdu.urgent) .. ", which RFC 8548 §3.7 calls the last urgent byte's " ..
            "index in the application stream although the frame offset counts framing bytes)")
    end
end

-- the session ID once keys with a session secret are known and not proven wrong (§3.4)
function Conn:session_id()
    local src = self.keys
    if not src or not src.ss or not src.aead then return nil end
    local ok, failed = 0, 0
    for _, fx in ipairs({ true, false }) do
        local d = self.tc[fx]
        if d then ok, failed = ok + d.ok, failed + d.failed end
    end
    if failed > 0 and ok == 0 then return nil end
    if not src.sid then src.sid = schar(src.tep_byte) .. cprf(src.ss, C_SESSID .. src.sn, K_LEN) end
    return src.sid
end

function Conn:any_ok()
    for _, fx in ipairs({ true, false }) do
        local d = self.tc[fx]
        if d and d.ok > 0 then return true end
    end
    return false
end

-- §3.7: a TCP FIN (or the end of the connection) without a FINp frame
function Conn:check_fin_frames(packet, from_x, tcp_fin)
    local d = self.tc[from_x]
    if not d or d.fin_reported or d.fin_seen or d.ok == 0 or not d.last_ok or not d:clean() then return end
    d.fin_reported = true
    if tcp_fin then
        note(packet, "fin-without-finp", ARROW[d.label] .. ": TCP FIN without a frame carrying FINp: the receiver " ..
            "must not report end-of-file (truncation or an injected FIN)")
    else
        note(packet, "tcpcrypt-no-fin-frame", ARROW[d.label] .. ": the stream ends without a frame carrying FINp: the data may be truncated")
    end
end

-- End of the capture (tcpinc_analyze: Connection.finish and the decryptor's finalize):
-- holes become gaps, half-parsed messages are reported, a direction that ended without a
-- FINp frame is reported, and a key log that matched nothing says so.
function Watch:finish(complete)
    for _, dir in ipairs({ "ab", "ba" }) do
        local pending = {}
        for _, ob in ipairs(self.obligations[dir]) do
            if (ob.frames_after or 0) > 0 then pending[#pending + 1] = ob end
        end
        local fin = self.fin_packet[dir]
        if #pending > 0 and fin and complete[dir] then
            local due = pending[#pending]
            local owed = (#pending == 1) and ("the rekey frame of packet " .. istr(due.rekey_packet))
                or (istr(#pending) .. " rekey frames (the last in packet " .. istr(due.rekey_packet) .. ")")
            note(fin, "rekey-not-answered", ARROW[dir] .. ": closed its side (FIN in packet " .. istr(fin) ..
                ") without sending a rekey frame, although it had received (acknowledged in packet " ..
                istr(pending[1].evidence) .. ") " .. owed .. " taking the peer to generation " ..
                istr(due.required) .. ": it must move to that generation and send a frame with rekey = 1 at once")
        end
        self.obligations[dir] = {}
    end
end

function Conn:finish()
    cur_packet = self.last_packet or cur_packet
    self.roles_confirmed = true
    if not self.neg then self:decide_eno(nil, nil) end
    for _, fx in ipairs({ true, false }) do
        local s = self.streams[fx]
        if s then s:finish() end
        local d = self.tc[fx]
        if d then d:finish() end
    end
    if self.watch then
        local complete = {}
        for _, fx in ipairs({ true, false }) do
            local d = self.tc[fx]
            if d then complete[d.label] = d.ended_clean and d.lost == 0 end
        end
        self.watch:finish(complete)
    end
    local seen = false
    for _, fx in ipairs({ true, false }) do
        local d = self.tc[fx]
        if d and not d.plain and (d.init or d.frames > 0) then seen = true end
        if d and not (self.fin[fx] or self.rst) then self:check_fin_frames(self.last_packet, fx, false) end
    end
    if seen and not self.keys and not keylog_empty() and ossl.ok
        and not self.notes.nokeys then
        self:note_once("nokeys", self.last_packet, "tcpcrypt-no-keys", "no key-log entry matches this connection")
    end
end

-- ------------------------------------------------------------------ per-packet input
local FLD = {}
for _, name in ipairs({ "frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "ip.src", "ip.dst", "ipv6.src",
                        "ipv6.dst", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len", "tcp.payload",
                        "tcp.options", "tcp.options.experimental.exid", "tcp.options.experimental.data",
                        "icmp.type", "icmpv6.type" }) do
    local ok, f = pcall(Field.new, name)
    if ok then FLD[name] = f end
end

local function fval(name)
    local f = FLD[name]
    if not f then return nil end
    local fi = f()
    return fi
end

local function last_addr()
    -- the innermost IP header: the address field with the largest offset
    local best, bsrc, bdst = -1, nil, nil
    for _, fam in ipairs({ "ip", "ipv6" }) do
        local fs, fd = FLD[fam .. ".src"], FLD[fam .. ".dst"]
        if fs and fd then
            local srcs, dsts = { fs() }, { fd() }
            for i, s in ipairs(srcs) do
                if dsts[i] and s.offset > best then
                    best, bsrc, bdst = s.offset, tostring(s.value), tostring(dsts[i].value)
                end
            end
        end
    end
    return bsrc, bdst
end

local function count(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n
end

local function process_packet(pinfo)
    local fi_stream = fval("tcp.stream")
    if not fi_stream then return end
    if fval("icmp.type") or fval("icmpv6.type") then return end
    local fi_seq, fi_flags = fval("tcp.seq_raw"), fval("tcp.flags")
    local fi_sport, fi_dport = fval("tcp.srcport"), fval("tcp.dstport")
    if not (fi_seq and fi_flags and fi_sport and fi_dport) then return end
    local id = fi_stream.value
    local sport, dport = fi_sport.value, fi_dport.value
    local c = conns[id]
    local src, dst = nil, nil
    if not c or c.xport == c.yport then
        -- addresses only when the ports cannot tell the directions apart
        local src_ip, dst_ip = last_addr()
        if not src_ip then return end
        src, dst = ep_text(src_ip, sport), ep_text(dst_ip, dport)
    end
    local num = pinfo.number
    cur_packet = num
    if #KEYLOG.pending_errors > 0 then
        for _, msg in ipairs(KEYLOG.pending_errors) do note(num, "tcpcrypt-keylog-error", msg) end
        KEYLOG.pending_errors = {}
    end
    local flags = fi_flags.value
    local seq = fi_seq.value
    local fi_ack = fval("tcp.ack_raw")
    local fi_len = fval("tcp.len")
    local fi_pay = fval("tcp.payload")
    local plen = fi_pay and fi_pay.len or 0
    local tcp_len = fi_len and fi_len.value or plen
    local missing = tcp_len - plen
    if missing < 0 then missing = 0 end
    local syn = floor(flags / 2) % 2 == 1
    local ackf = floor(flags / 16) % 2 == 1
    local fin = flags % 2 == 1
    local rst = floor(flags / 4) % 2 == 1
    local psh = floor(flags / 8) % 2 == 1
    local ackno = (ackf and fi_ack) and fi_ack.value or nil

    if not c then
        c = new_conn(id, src, dst, not (syn and ackf))
        c.xport = tonumber(string.match(c.x, ":(%d+)$"))
        c.yport = tonumber(string.match(c.y, ":(%d+)$"))
        conns[id] = c
    end
    local from_x
    if src then from_x = (src == c.x) else from_x = (sport == c.xport) end
    c.last_packet = num
    local r = prec(num)
    r.conn, r.from_x = id, from_x
    -- the TCP options: SYN-form ENO, ENO on the segments of the handshake phase, and on a
    -- side watched after a fallback
    local opts = ""
    if syn or not c.eno_phase_done or not c.neg or c.after_fallback[from_x] then
        local fi_opts = fval("tcp.options")
        if fi_opts then
            local ok, raw = pcall(function() return fi_opts.range:raw() end)
            if ok and raw then opts = raw end
        end
    end
    local info = { packet = num, seq = seq, ack = ackno, flags = flags, opts = opts, data_len = plen + missing }

    if syn and not ackf then
        local prev = c.syn[from_x]
        if c.packets == 0 then
            c:on_syn(info, from_x)
            c:start_stream(from_x, seq)
        elseif prev and prev.isn == seq and not c:closed() then
            note(num, "tcp-retransmission", "SYN retransmitted (same ISN as packet " .. istr(prev.packet) .. ")")
            c:on_syn(info, from_x)
        elseif prev == nil and not from_x and next(c.synack) == nil and c.packets == count(c.syn) then
            c:on_syn(info, from_x) -- the peer's SYN: a simultaneous open
        end
    end
    c.packets = c.packets + 1
    if missing > 0 then
        note(num, "packet-truncated", "captured " .. istr(plen) .. " of " .. istr(tcp_len) ..
            " payload bytes (snaplen): " .. istr(missing) .. " payload bytes missing")
    end
    if syn then
        if ackf then
            local prev = c.synack[from_x]
            if prev and prev.isn == seq then
                note(num, "tcp-retransmission", "SYN-ACK retransmitted (as packet " .. istr(prev.packet) .. ")")
            end
            c:on_synack(info, from_x)
        end
        c:start_stream(from_x, seq)
        return
    end
    local cached = nil
    local function got()
        if not cached then cached = c:segment_eno(opts, flags, num) end
        return cached
    end
    local has_eno = nil
    if not c.eno_phase_done then has_eno = c:check_nonsyn_eno(got, from_x, num) end
    -- a watched side's segment: the byte test spares most option walks
    if c.after_fallback[from_x] and opts:find("[\69\253\254]") and #got().options > 0 then
        note(num, "eno-after-fallback", "an ENO option on a segment sent after its sender fell back to plain TCP (no further ENO options may be sent)")
        c.nonsyn_eno[from_x] = false
        c.after_fallback[from_x] = false
    end
    if not c.neg then
        if next(c.syn) == nil and next(c.synack) == nil then
            c:decide_eno(nil, num)
        elseif c.simultaneous or from_x == c:active_is_x() then
            if has_eno == nil then
                local g = got()
                c.legacy = c.legacy or g.legacy
                has_eno = #g.options > 0
            end
            c:decide_eno(has_eno, num)
        end
    end
    if c.nonsyn_from[from_x] == nil then c.nonsyn_from[from_x] = num end
    local s = c.streams[from_x]
    local size = plen + missing
    if s and c.watch and c.watch.active then
        local peer = c.streams[not from_x]
        local ack_off = (ackno and peer and peer.base) and peer:offset_of(ackno) or nil
        local start = s:offset_of(seq)
        c.watch:segment(c:label(from_x), start, start + size, ack_off, fin, num)
    end
    if s then
        local d = c.tc[from_x]
        if d and d.track_init and size > 0 and #d.init_segs < 64 then
            local start = s:offset_of(seq)
            d.init_segs[#d.init_segs + 1] = { start, start + size, psh, num }
        end
        local payload = ""
        if plen > 0 then
            local ok, raw = pcall(function() return fi_pay.range:raw() end)
            if ok and raw then payload = raw end
        end
        r.seg_off = s:segment(seq, payload, num, missing)
        r.plen = #payload
        d = c.tc[from_x]
        if fin and d and d.state == S_RESYNC and #d.buf > 0 then d:process(true) end
        if fin then c:check_fin_frames(num, from_x, true) end
    end
    if ackno then
        local peer = c.streams[not from_x]
        if peer then peer:ack(ackno) end
    end
    if fin then c.fin[from_x] = c.fin[from_x] or num end
    if rst and not c.rst then
        c.rst = num
        for _, fx in ipairs({ true, false }) do
            if not c.fin[fx] then c:check_fin_frames(num, fx, false) end
        end
    end
    if not c.released and c:closed() then
        -- closed: the retransmission window goes (a late retransmission is then only not
        -- compared), so memory does not grow with the number of connections
        c.released = true
        for _, fx in ipairs({ true, false }) do
            local st = c.streams[fx]
            if st then st.chunks, st.head, st.recent_len = {}, 1, 0 end
        end
    end
end

-- ------------------------------------------------------------------ display helpers
local function add_expert(tree, code, msg, conf)
    local e = E[code]
    if not e then e = E["tcpcrypt-lua-error"] end
    -- the analyzer's finding code starts the message (labels are cut at 240 characters), so
    -- both outputs can be matched
    if msg then tree:add_proto_expert_info(e, "[" .. code .. "] " .. msg) else tree:add_proto_expert_info(e) end
    if conf and CONFORMANCE[code] then
        tree:add(F["tcpeno.conformance"], code):set_generated()
        tree:add(F["tcpeno.conformance.rfc"], CONFORMANCE[code]):set_generated()
    end
end

local function u64(n)
    n = floor(n)
    local hi = floor(n / 4294967296)
    local ok, v = pcall(UInt64.new, n - hi * 4294967296, hi)
    if ok then return v end
    return n
end

local function bytes_tvb(raw, name)
    local ok, ba = pcall(ByteArray.new, raw, true)
    if not ok or ba == nil or ba:len() ~= #raw then ba = ByteArray.new(tohex(raw)) end
    return ba:tvb(name)
end

local function current_syn_flag()
    local fl = fval("tcp.flags")
    if not fl then return true end
    return floor(fl.value / 2) % 2 == 1
end

-- tvb: the whole option (kind, length[, ExID], contents)
local function show_eno_option(tree, tvb, encoding, syn_form)
    local n = tvb:len()
    if n < 2 then return end
    local t = tree:add(p_eno, tvb(0, n))
    t:set_text("TCP-ENO option" .. (encoding == "experimental" and " (experimental encoding)" or "") ..
        (syn_form and "" or ", non-SYN form"))
    t:add(F["tcpeno.kind"], tvb(0, 1))
    t:add(F["tcpeno.length"], tvb(1, 1))
    local base = 2
    if encoding == "experimental" then
        if n >= 4 then t:add(F["tcpeno.exid"], tvb(2, 2)) end
        base = 4
        add_expert(t, "eno-experimental")
    end
    t:add(F["tcpeno.option.encoding"], encoding):set_generated()
    local contents = (n > base) and tvb(base, n - base):raw() or ""
    if not syn_form then
        -- a one-bit acknowledgment: ENO ignores the contents (tcpcrypt gives them none)
        t:append_text(#contents > 0 and (": " .. istr(#contents) .. " bytes of contents") or ": acknowledgment")
        return
    end
    local subs, _, malformed = parse_suboptions(contents, base)
    local info, seen_global = {}, false
    for _, s in ipairs(subs) do
        if s.off + s.len <= n then
            local r = tvb(s.off, s.len)
            if s.kind == "global" then
                local st = t:add(F["tcpeno.global"], r)
                st:add(F["tcpeno.global.b"], r)
                st:add(F["tcpeno.global.a"], r)
                st:add(F["tcpeno.global.z"], r)
                if not s.first then st:append_text(" (ignored: only the first global suboption counts)") end
                seen_global = true
                info[#info + 1] = sfmt("global 0x%02x", s.byte)
            else
                local st = t:add(F["tcpeno.suboption"], r)
                local kind = TEPS[s.tep] and tcpcrypt_kind(s) or nil
                st:set_text("TEP suboption: " .. (VALS.tep[s.tep] or sfmt("0x%02x", s.tep)) ..
                    (s.data and (" with " .. istr(#s.data) .. " data bytes") or "") ..
                    (kind == "resume" and " (resumption)" or ""))
                if s.length_byte then
                    st:add(F["tcpeno.length_byte"], tvb(s.off, 1))
                    st:add(F["tcpeno.length_byte.data_len"], tvb(s.off, 1), #s.data):set_generated()
                end
                if s.tep_off < n then
                    st:add(F["tcpeno.tep"], tvb(s.tep_off, 1))
                    st:add(F["tcpeno.tep.v"], tvb(s.tep_off, 1))
                end
                if s.data and #s.data > 0 and s.data_off + #s.data <= n then
                    st:add(F["tcpeno.tep.data"], tvb(s.data_off, #s.data))
                    if kind == "resume" then
                        st:add(F["tcpcrypt.resume.half"], tvb(s.data_off, RESUME_HALF))
                        if #s.data > RESUME_HALF then
                            st:add(F["tcpcrypt.resume.nonce"], tvb(s.data_off + RESUME_HALF, #s.data - RESUME_HALF))
                        end
                    end
                end
                info[#info + 1] = (VALS.tep[s.tep] or sfmt("TEP 0x%02x", s.tep)) .. (kind == "resume" and " (resume)" or "")
            end
        end
    end
    if not seen_global and not malformed then
        t:add(F["tcpeno.global.implicit"], true):set_generated()
    end
    if malformed then
        t:add(F["tcpeno.malformed"], true):set_generated()
    end
    if #info > 0 then t:append_text(": " .. table.concat(info, ", ")) end
end

local function show_conn(tree, c, from_x, gen)
    local neg, a_is_x = c:outcome()
    local t = tree:add(p_eno)
    t:set_generated()
    if not neg then
        -- Nothing in the capture up to this packet decides the outcome (RFC 8547 §4.6: A's
        -- third segment does); the SYN-form options are in the TCP options above.
        t:set_text("TCP-ENO connection: outcome not known at this packet (decided by A's first ACK" ..
            (in_gui and ")" or "; tshark -2 -Y frame shows it on every packet)"))
        if c.simultaneous then t:add(F["tcpeno.simultaneous_open"], true):set_generated() end
        return t
    end
    -- the labels are the same on every packet of the connection: made once per outcome
    local lb = c.labels
    if not lb or lb.neg ~= neg then
        local status = neg.status
        lb = { neg = neg }
        lb.text = "TCP-ENO connection: " .. status .. (neg.reason and (" (" .. neg.reason .. ")") or "") ..
            (neg.tep and status == "negotiated" and (", " .. (VALS.tep[neg.tep] or sfmt("TEP 0x%02x", neg.tep))) or "")
        lb.status = "Status: " .. status .. (VALS.eno_status[status] and (" (" .. VALS.eno_status[status] .. ")") or "")
        if neg.reason then
            lb.reason = "Fallback reason: " .. neg.reason .. (VALS.eno_reason[neg.reason] and (" (" .. VALS.eno_reason[neg.reason] .. ")") or "")
        end
        if neg.roles then
            lb.roles = "Roles: " .. neg.roles .. (VALS.roles[neg.roles] and (" (" .. VALS.roles[neg.roles] .. ")") or "")
        end
        c.labels = lb
    end
    local status = neg.status
    t:set_text(lb.text)
    t:add(F["tcpeno.status"], status, lb.status):set_generated()
    if status ~= "negotiated" and neg.reason then
        t:add(F["tcpeno.reason"], neg.reason, lb.reason):set_generated()
    end
    if neg.tep and status == "negotiated" then
        t:add(F["tcpeno.negotiated_tep"], neg.tep):set_generated()
    end
    if neg.roles and a_is_x ~= nil then
        t:add(F["tcpeno.roles"], neg.roles, lb.roles):set_generated()
    end
    local sa, sb = nil, nil
    if a_is_x ~= nil then
        sa, sb = c:syn_of(true, a_is_x), c:syn_of(false, a_is_x)
        if sa and #sa.eno.options > 0 and not c.legacy then
            t:add(F["tcpeno.encoding"], sa.eno.options[1].encoding):set_generated()
        end
        local a_ep = a_is_x and c.x or c.y
        local b_ep = a_is_x and c.y or c.x
        t:add(F["tcpeno.role"], (from_x == a_is_x) and "A" or "B"):set_generated()
        t:add(F["tcpeno.host_a"], a_ep):set_generated()
        t:add(F["tcpeno.host_b"], b_ep):set_generated()
    end
    if c.simultaneous then t:add(F["tcpeno.simultaneous_open"], true):set_generated() end
    if neg.resumed and status == "negotiated" then t:add(F["tcpeno.resumed"], true):set_generated() end
    if gen and gen.sid_at then
        t:add(F["tcpeno.session_id"], gen.tvb(gen.sid_at, gen.sid_len)):set_generated()
    end
    if sa then t:add(F["tcpeno.syn_a"], sa.packet):set_generated() end
    if sb then t:add(F["tcpeno.syn_b"], sb.packet):set_generated() end
    if c.ack_packet and c.neg then t:add(F["tcpeno.ack_a"], c.ack_packet):set_generated() end
    return t
end

local function show_init(t, tvb, m)
    local n = tvb:len()
    local pre = m.is1 and "tcpcrypt.init1." or "tcpcrypt.init2."
    if n < 9 then return end
    t:add(F[pre .. "magic"], tvb(0, 4))
    t:add(F[pre .. "length"], tvb(4, 4))
    if m.is1 then t:add(F["tcpcrypt.init1.nciphers"], tvb(8, 1)) end
    local width = m.width or 2
    for i, c in ipairs(m.ciphers or {}) do
        local at = (m.cipher_off or 9) + width * (i - 1)
        if at + width <= n then
            t:add(F[m.is1 and "tcpcrypt.init1.sym_cipher" or "tcpcrypt.init2.sym_cipher"], tvb(at, width), c)
        end
    end
    if m.nonce_off and m.nonce_off + 32 <= n then t:add(F[pre .. "nonce"], tvb(m.nonce_off, 32)) end
    local pub = m.pub
    if pub and m.pub_off + pub.wire_len <= n then
        if pub.length_field then
            t:add(F[pre .. "pubkey_len"], tvb(m.pub_off, 2))
            t:add(F[pre .. "pubkey"], tvb(m.pub_off + 2, pub.wire_len - 2))
            t:add(F["tcpcrypt.pubkey_len_reading"], pub.reading):set_generated()
        else
            t:add(F[pre .. "pubkey"], tvb(m.pub_off, pub.wire_len))
        end
    end
    if m.ign_off and m.ign_len and m.ign_len > 0 and m.ign_off + m.ign_len <= n then
        t:add(F[pre .. "ignored"], tvb(m.ign_off, m.ign_len))
    end
    if m.dialect then
        local it = t:add(F["tcpcrypt.dialect"], m.dialect)
        it:set_generated()
        if VALS.dialect[m.dialect] then it:append_text(" (" .. VALS.dialect[m.dialect] .. ")") end
    end
end

-- Who gets decrypted application data, most explicit first: Decode As (on "tcp.port",
-- or on "tcpcrypt.port" for Lua dissectors) for B's port, then A's; the heuristics
-- Wireshark runs on decrypted TLS data (HTTP, HTTP/2, ...), which need no port and,
-- unlike TCP's own heuristics, do not claim the TCP conversation (that would send the
-- ciphertext of later segments to them); the TCP port table (the dissector a claimed port
-- had), then TLS's; else data.
local function try_app_dissectors(tvb, pinfo, tree, c)
    local ports = {}
    local a_ep, b_ep = c.a_is_x and c.x or c.y, c.a_is_x and c.y or c.x
    for _, ep in ipairs({ b_ep, a_ep }) do
        local port = tonumber(string.match(ep, ":(%d+)$"))
        if port then ports[#ports + 1] = port end
    end
    local function call(d)
        local ok, n = pcall(d.call, d, tvb, pinfo, tree)
        return ok and (n == nil or n > 0)
    end
    local function by_port(name, chosen_only)
        local ok, dt = pcall(DissectorTable.get, name)
        if not ok or not dt then return false end
        for _, port in ipairs(ports) do
            local ok2, d = pcall(dt.get_dissector, dt, port)
            if name == "tcp.port" and claimed_ports[port] ~= nil then ok2, d = true, claimed_ports[port] or nil end
            if ok2 and d and not is_ours(d) and (not chosen_only or chosen_ports[port]) and call(d) then
                return true
            end
        end
        return false
    end
    if by_port("tcpcrypt.port") or by_port("tcp.port", true) then return true end
    if DissectorTable.try_heuristics then
        local ok, hit = pcall(DissectorTable.try_heuristics, "tls", tvb, pinfo, tree)
        if ok and hit then return true end
    end
    if by_port("tcp.port") or by_port("tls.port") then return true end
    local ok, data = pcall(Dissector.get, "data")
    if ok and data then call(data) end
    return true
end

-- Application data of a direction is handed on as the dissector asks (pinfo.desegment_*),
-- like TCP's own reassembly: undelivered bytes wait as parts (never one string grown per
-- packet), and when the dissector named a length the next call waits until it is there.
-- For redissection each handing-on records where its bytes lie in the direction's log of
-- application data (first part, bytes to skip, last part): nothing is stored twice.
local ONE_MORE = 0x0ffffffe

local function app_chunk(d, first, skip, last)
    local parts = {}
    for i = first, last do parts[#parts + 1] = d.app_log[i] end
    if #parts == 0 then return "" end
    parts[1] = ssub(parts[1], skip + 1)
    return table.concat(parts)
end

local function handoff(app, pinfo, tree, c, d, r, visited)
    if not p_tc.prefs.handoff then return end
    local chunk, pos
    if visited then
        pos = r.handoff and r.handoff[d.label]
        if not pos then return end
        chunk = app_chunk(d, pos[1], pos[2], pos[3])
    else
        if #app > 0 then
            d.app_log[#d.app_log + 1] = app
            d.app_waiting = d.app_waiting + #app
            if not d.app_first then d.app_first, d.app_skip = #d.app_log, 0 end
        end
        if d.app_waiting == 0 or d.app_waiting < d.app_need then return end
        pos = { d.app_first, d.app_skip, #d.app_log }
        chunk = app_chunk(d, pos[1], pos[2], pos[3])
        if KEEP_RECORDS then
            r.handoff = r.handoff or {}
            r.handoff[d.label] = pos
        end
    end
    local tvb = bytes_tvb(chunk, "tcpcrypt application data")
    local saved_cd = pinfo.can_desegment
    pcall(function() pinfo.can_desegment = 2 end)
    pcall(function() pinfo.desegment_len = 0; pinfo.desegment_offset = 0 end)
    try_app_dissectors(tvb, pinfo, tree, c)
    local want, at = 0, 0
    pcall(function() want, at = pinfo.desegment_len or 0, pinfo.desegment_offset or 0 end)
    pcall(function() pinfo.desegment_len = 0; pinfo.desegment_offset = 0; pinfo.can_desegment = saved_cd end)
    if visited then return end
    if want ~= 0 and at < #chunk and #chunk - at < 16777216 then
        -- the bytes from offset at on wait: find their part and skip in the log
        local first, skip = pos[1], pos[2] + at
        while first < pos[3] and skip >= #d.app_log[first] do
            skip = skip - #d.app_log[first]
            first = first + 1
        end
        d.app_first, d.app_skip = first, skip
        d.app_waiting = #chunk - at
        d.app_need = (want > 0 and want < ONE_MORE) and (d.app_waiting + want) or 0
    else
        d.app_first, d.app_skip, d.app_waiting, d.app_need = nil, 0, 0, 0
    end
    if not KEEP_RECORDS and d.app_first then
        -- nothing is shown again: drop the parts already handed on for good
        local keep = {}
        for i = d.app_first, #d.app_log do keep[#keep + 1] = d.app_log[i] end
        d.app_log, d.app_first = keep, 1
    elseif not KEEP_RECORDS then
        d.app_log = {}
    end
end

local function show_pdus(tree, pinfo, c, r, payload_tvb, visited, gen)
    local apps = {}
    for _, pdu in ipairs(r.pdus) do
        local len = #pdu.raw
        local tvb
        local rel = r.seg_off and (pdu.stream_offset - r.seg_off) or -1
        if payload_tvb and pdu.first_packet == pinfo.number and rel >= 0 and rel + len <= payload_tvb:len()
            and payload_tvb(rel, len):raw() == pdu.raw then
            tvb = payload_tvb(rel, len):tvb()
        else
            tvb = bytes_tvb(pdu.raw, "Reassembled tcpcrypt " .. (pdu.kind == "frame" and "frame" or "Init"))
        end
        local t = tree:add(p_tc, tvb())
        local arrow = ARROW[pdu.dir] or pdu.dir
        local d = pdu.d
        t:add(F["tcpcrypt.direction"], d and d.label or pdu.dir):set_generated()
        t:add(F["tcpcrypt.stream_offset"], u64(pdu.stream_offset)):set_generated()
        if pdu.first_packet ~= pinfo.number then
            t:add(F["tcpcrypt.first_packet"], pdu.first_packet):set_generated()
        end
        if (pdu.segments or 1) > 1 then t:add(F["tcpcrypt.segments"], pdu.segments):set_generated() end
        if pdu.kind == "init1" or pdu.kind == "init2" then
            local m = pdu.init
            local name = (pdu.kind == "init1") and "Init1" or "Init2"
            t:set_text("tcpcrypt " .. name .. " (" .. arrow .. ", " .. istr(len) .. " bytes)")
            local sub = t:add(F["tcpcrypt." .. pdu.kind], tvb())
            show_init(sub, tvb, m)
            if not m.is1 and m.cipher then t:add(F["tcpcrypt.aead"], m.cipher):set_generated() end
            apps[#apps + 1] = name
        else
            local k = c.keys
            if c.aead then t:add(F["tcpcrypt.aead"], c.aead):set_generated() end
            if k and k.from and (pdu.verified ~= nil or pdu.undecryptable) then
                t:add(F["tcpcrypt.keys_from"], k.from):set_generated()
            end
            if c.neg and c.neg.resumed and c.neg.status == "negotiated" then
                t:add(F["tcpcrypt.resumed"], true):set_generated()
                if c.resume_index then t:add(F["tcpcrypt.resume.index"], c.resume_index):set_generated() end
            end
            if c.base and c.base ~= "mixed" and pdu.init_len > 0 then
                local it = t:add(F["tcpcrypt.nonce_offset_base"], c.base)
                it:set_generated()
                if VALS.nonce_offset_base[c.base] then it:append_text(" (" .. VALS.nonce_offset_base[c.base] .. ")") end
            end
            local ok_text = (pdu.verified == true) and ", verified" or (pdu.verified == false and ", NOT verified" or
                (pdu.undecryptable and ", undecryptable" or ""))
            t:set_text("tcpcrypt frame " .. istr(pdu.number) .. " (" .. arrow .. ", offset " .. istr(pdu.stream_offset) ..
                ", clen " .. istr(pdu.length) .. (pdu.control % 2 == 1 and ", rekey" or "") .. ok_text .. ")")
            local ft = t:add(F["tcpcrypt.frame"], tvb())
            ft:set_text("Frame")
            ft:add(F["tcpcrypt.frame.number"], pdu.number):set_generated()
            local ct = ft:add(F["tcpcrypt.frame.control"], tvb(0, 1))
            ct:add(F["tcpcrypt.frame.control.rekey"], tvb(0, 1))
            ct:add(F["tcpcrypt.frame.control.cres"], tvb(0, 1))
            ft:add(F["tcpcrypt.frame.clen"], tvb(1, 2))
            if pdu.offset then ft:add(F["tcpcrypt.frame.offset"], u64(pdu.offset)):set_generated() end
            if gen and gen.nonce_at[pdu] then
                ft:add(F["tcpcrypt.frame.nonce"], gen.tvb(gen.nonce_at[pdu], 12)):set_generated()
            end
            ft:add(F["tcpcrypt.frame.generation"], pdu.generation or 0):set_generated()
            if len - 3 - 16 > 0 then ft:add(F["tcpcrypt.frame.ciphertext"], tvb(3, len - 19)) end
            if len >= 19 then ft:add(F["tcpcrypt.frame.tag"], tvb(len - 16, 16)) end
            if pdu.verified ~= nil then
                ft:add(F["tcpcrypt.frame.verified"], pdu.verified):set_generated()
            end
            if pdu.verified == false and c.first_failed == pdu and not c:any_ok() then
                add_expert(ft, "tcpcrypt-wrong-key", "no frame authenticates with the keys from " ..
                    tostring(k and k.from) .. ": the key-log entry is wrong")
            end
            if pdu.plaintext then
                local pt = pdu.plaintext
                local ptvb = bytes_tvb(pt, "Decrypted tcpcrypt")
                local pl = t:add(F["tcpcrypt.plaintext"], ptvb())
                pl:set_text("Plaintext (" .. istr(#pt) .. " bytes)")
                if #pt >= 1 then
                    local fl = pl:add(F["tcpcrypt.plaintext.flags"], ptvb(0, 1))
                    fl:add(F["tcpcrypt.plaintext.flags.finp"], ptvb(0, 1))
                    fl:add(F["tcpcrypt.plaintext.flags.urgp"], ptvb(0, 1))
                    fl:add(F["tcpcrypt.plaintext.flags.fres"], ptvb(0, 1))
                end
                if pdu.urgent and #pt >= 3 then pl:add(F["tcpcrypt.plaintext.urgent"], ptvb(1, 2)) end
                local at = pdu.data_at or 1
                local dlen = #pt - at
                pl:add(F["tcpcrypt.plaintext.data_len"], dlen > 0 and dlen or 0):set_generated()
                if dlen > 0 then
                    pl:add(F["tcpcrypt.plaintext.data"], ptvb(at, dlen))
                    local label = d and d.label or pdu.dir
                    apps[label] = (apps[label] or "") .. ssub(pt, at + 1)
                end
            end
        end
    end
    -- application data of this packet, per direction, to the next dissector
    for _, label in ipairs({ "ab", "ba" }) do
        local d = c:dir_of(label)
        if d and (apps[label] or (visited and r.handoff and r.handoff[label])) then
            handoff(apps[label] or "", pinfo, tree, c, d, r, visited)
        end
    end
    return apps
end

local function show_experimental(tree, tvb)
    local fe = FLD["tcp.options.experimental.exid"]
    if not fe then return end
    local exids = { fe() }
    if #exids == 0 then return end
    local syn_form = current_syn_flag()
    for _, e in ipairs(exids) do
        if e.value == 0x454E then
            local start = e.offset - 2
            if start >= 0 and start + 4 <= tvb:len() then
                local kind, olen = tvb(start, 1):uint(), tvb(start + 1, 1):uint()
                if (kind == 253 or kind == 254) and olen >= 4 and start + olen <= tvb:len() then
                    show_eno_option(tree, tvb(start, olen):tvb(), "experimental", syn_form)
                end
            end
        end
    end
end

-- ------------------------------------------------------------------ the postdissector
local post = Proto("tcpinc_post", "TCP-ENO/tcpcrypt state")

-- tshark -2's second pass marks the end of the capture for the analysis: its first
-- re-dissection finishes every connection. Not in the GUI, which re-dissects packets
-- while a file is still being read or a live capture runs (holes would become gaps and
-- frames in progress truncated); there, the FIN/RST-time checks are all there is.
local finished = false
local function finish_all()
    finished = true
    local ids = {}
    for id in pairs(conns) do ids[#ids + 1] = id end
    table.sort(ids)
    for _, id in ipairs(ids) do
        local ok, err = pcall(Conn.finish, conns[id])
        if not ok then note(conns[id].last_packet, "tcpcrypt-lua-error", "finishing the connection: " .. tostring(err)) end
    end
end

-- The display of a packet is handed to the tcpeno and tcpcrypt dissectors through their
-- handles, so their expert infos carry those protocols' names (Wireshark takes the name
-- of the protocol being dissected, which here would be the postdissector's).
local DISPLAY = nil
local handles = nil

local function get_handles()
    if handles == nil then
        local ok1, h1 = pcall(Dissector.get, "tcpeno")
        local ok2, h2 = pcall(Dissector.get, "tcpcrypt")
        handles = { eno = ok1 and h1 or nil, tc = ok2 and h2 or nil }
    end
    return handles
end

local function is_conformance(e)
    return e.conf ~= false and not (e.code == "frame-tag-failed" and e.conn and not e.conn:any_ok())
end

local function display_eno(tree)
    local d = DISPLAY
    show_experimental(tree, d.tvb)
    local et = show_conn(tree, d.c, d.r.from_x, d.gen)
    for _, e in ipairs(d.r.experts) do
        local def = EXPERT_DEFS[e.code]
        if not (def and def.protocol == "tcpcrypt") then add_expert(et, e.code, e.msg, is_conformance(e)) end
    end
end

local function display_tc(tree, pinfo)
    local d = DISPLAY
    local r, c = d.r, d.c
    local target = nil
    if #r.pdus > 0 then
        local apps = show_pdus(tree, pinfo, c, r, d.payload_tvb, d.visited, d.gen) or {}
        local names = {}
        for _, pdu in ipairs(r.pdus) do
            names[#names + 1] = (pdu.kind == "frame") and "Frame" or ((pdu.kind == "init1") and "Init1" or "Init2")
        end
        pcall(function()
            if not (apps.ab or apps.ba) then
                pinfo.cols.protocol = "tcpcrypt"
                pinfo.cols.info:append(" [tcpcrypt " .. table.concat(names, ", ") .. "]")
            end
        end)
    elseif r.continued_in and c.tc[r.from_x] then
        target = tree:add(p_tc, "tcpcrypt: segment of a message or frame")
        target:add(F["tcpcrypt.continued_in"], r.continued_in):set_generated()
    end
    for _, e in ipairs(r.experts) do
        local def = EXPERT_DEFS[e.code]
        if def and def.protocol == "tcpcrypt" then
            target = target or tree:add(p_tc, "tcpcrypt analysis")
            add_expert(target, e.code, e.msg, is_conformance(e))
        end
    end
end

local function wants_tc(r, c)
    if #r.pdus > 0 or (r.continued_in and c.tc[r.from_x]) then return true end
    for _, e in ipairs(r.experts) do
        local def = EXPERT_DEFS[e.code]
        if def and def.protocol == "tcpcrypt" then return true end
    end
    return false
end

-- tshark -2 with neither -Y nor -R builds no protocol tree on its first pass (tshark 4.0),
-- so the field extractors see nothing there and the postdissector first meets the packets
-- in the second pass: it then analyses them there, in one pass, and says so on stderr.
local first_pass_seen, late, late_told = false, false, false

local function post_impl(tvb, pinfo, tree)
    local visited = pinfo.visited
    if not visited then
        if fval("frame.number") then
            first_pass_seen = true
            if SCAN.state == "reading" or SCAN.state == "verified" then
                scan_until(pinfo.number, pinfo.number == 1 and tvb:raw() or nil)
            end
            process_packet(pinfo)
        end
    elseif not first_pass_seen and not in_gui then
        late = true
        if not pkts[pinfo.number] then
            if SCAN.state == "reading" or SCAN.state == "verified" then
                scan_until(pinfo.number, pinfo.number == 1 and tvb:raw() or nil)
            end
            process_packet(pinfo)
        end
        if not late_told then
            late_told = true
            pcall(function()
                io.stderr:write("tcpinc.lua: tshark -2 without -Y or -R builds no protocol tree on its first pass, so " ..
                    "TCP-ENO/tcpcrypt fields show what is known at each packet; add -Y frame (or any -Y/-R filter) " ..
                    "to see each connection's final outcome on every packet\n")
            end)
        end
    elseif not finished and not in_gui then
        finish_all()
    end
    local r = pkts[pinfo.number]
    if not r or not r.conn then return end
    local c = conns[r.conn]
    if not c then return end
    cur_packet = pinfo.number
    -- generated byte values (session ID, nonces) live in one small data source per packet
    local gen = { nonce_at = {} }
    local parts, at = {}, 0
    local sid = c:session_id()
    if sid then
        parts[#parts + 1] = sid
        gen.sid_at, gen.sid_len = 0, #sid
        at = #sid
    end
    for _, pdu in ipairs(r.pdus) do
        if pdu.kind == "frame" and pdu.nonce then
            parts[#parts + 1] = pdu.nonce
            gen.nonce_at[pdu] = at
            at = at + 12
        end
    end
    if at > 0 then gen.tvb = bytes_tvb(table.concat(parts), "tcpcrypt generated values") else gen = nil end
    local payload_tvb = nil
    if #r.pdus > 0 then
        local fi_pay = fval("tcp.payload")
        if fi_pay then
            local ok, ptvb = pcall(function() return fi_pay.range:tvb() end)
            if ok then payload_tvb = ptvb end
        end
    end
    DISPLAY = { num = pinfo.number, tvb = tvb, r = r, c = c, gen = gen, visited = visited and not late,
                payload_tvb = payload_tvb }
    local h = get_handles()
    local ok = h.eno and pcall(h.eno.call, h.eno, tvb, pinfo, tree)
    if not ok then display_eno(tree) end
    if wants_tc(r, c) then
        ok = h.tc and pcall(h.tc.call, h.tc, tvb, pinfo, tree)
        if not ok then display_tc(tree, pinfo) end
    end
    DISPLAY = nil
end

function post.dissector(tvb, pinfo, tree)
    local ok, err = pcall(post_impl, tvb, pinfo, tree)
    DISPLAY = nil
    if not KEEP_RECORDS then pkts[pinfo.number] = nil end
    if not ok then
        pcall(function()
            local t = tree:add(p_tc, "tcpinc.lua internal problem")
            t:add_proto_expert_info(E["tcpcrypt-lua-error"], "tcpinc.lua internal problem caught: " .. tostring(err))
        end)
    end
end

function post.init()
    reclaim_ports()
    conns, pkts, cur_packet, last_refresh, finished = {}, {}, 0, -1, false
    first_pass_seen, late, late_told, DISPLAY = false, false, false, nil
    CHAIN, CHAINED, RESUMES = {}, {}, { proposed = {}, resumed = {} }
    keylog_pref_path = p_tc.prefs.keylog_file or ""
    EMBEDDED.texts = {}
    KEYLOG.path, KEYLOG.size = nil, -1
    keylog_refresh()
    scan_open()
end

register_postdissector(post)

-- A tap with a filter makes every pass (tshark -2's first pass included) build the
-- protocol tree, without which the field extractors above see nothing.
pcall(function()
    local tap = Listener.new(nil, "tcp")
    function tap.packet() end
end)

-- ------------------------------------------------------------------ statistics
-- Statistics > TCP-ENO and tcpcrypt in Wireshark, "tshark -z tcpcrypt,summary": one line
-- per connection (ENO outcome with its TEP or fallback reason, AEAD, frames, verified
-- frames) and the counts, as the CLI's summary gives them.
local function summary_lines()
    local ids = {}
    for id in pairs(conns) do ids[#ids + 1] = id end
    table.sort(ids)
    local lines = { sfmt("%-5s %-28s %-28s %-10s %-26s %-23s %-14s %s", "conn", "A", "B", "ENO",
        "TEP / reason", "AEAD", "frames A>B/B>A", "verified") }
    local counts, reasons, decrypted, failed = { negotiated = 0, fallback = 0, absent = 0, unknown = 0 }, {}, 0, 0
    for _, id in ipairs(ids) do
        local c = conns[id]
        local neg = c.neg
        local status = neg and neg.status or "unknown"
        counts[status] = (counts[status] or 0) + 1
        local what
        if status == "negotiated" then
            what = VALS.tep[neg.tep] and ssub(VALS.tep[neg.tep], 10) or sfmt("0x%02x", neg.tep or 0)
            what = sfmt("0x%02x ", neg.tep or 0) .. what
        else
            what = neg and neg.reason or "handshake-not-captured"
            if status == "fallback" then reasons[what] = (reasons[what] or 0) + 1 end
        end
        local ab, ba = c:dir_of("ab"), c:dir_of("ba")
        local ok = (ab and ab.ok or 0) + (ba and ba.ok or 0)
        local bad = (ab and ab.failed or 0) + (ba and ba.failed or 0)
        if ok > 0 then decrypted = decrypted + 1 end
        if bad > 0 then failed = failed + 1 end
        local verified = "-"
        if c.keys then verified = istr(ok) .. " ok" .. (bad > 0 and (", " .. istr(bad) .. " failed") or "") end
        local frames = (ab or ba) and (istr(ab and ab.frames or 0) .. "/" .. istr(ba and ba.frames or 0)) or "-"
        local a_ep, b_ep = c.a_is_x and c.x or c.y, c.a_is_x and c.y or c.x
        lines[#lines + 1] = sfmt("%-5s %-28s %-28s %-10s %-26s %-23s %-14s %s", istr(id), a_ep, b_ep, status, what,
            c.aead and (VALS.aead[c.aead] or sfmt("0x%04x", c.aead)) or "-", frames, verified)
    end
    local rs = {}
    for r, n in pairs(reasons) do rs[#rs + 1] = r .. " " .. istr(n) end
    table.sort(rs)
    lines[#lines + 1] = ""
    lines[#lines + 1] = istr(#ids) .. " connections: " .. istr(counts.negotiated) .. " negotiated, " ..
        istr(counts.fallback) .. " fallback" .. (#rs > 0 and (" (" .. table.concat(rs, ", ") .. ")") or "") .. ", " ..
        istr(counts.absent) .. " without ENO, " .. istr(counts.unknown) .. " handshake not captured; " ..
        istr(decrypted) .. " decrypted" .. (failed > 0 and (", " .. istr(failed) .. " with frames failing authentication") or "")
    return lines
end

pcall(function()
    register_stat_cmd_arg("tcpcrypt,summary", function()
        local tap = Listener.new(nil, "tcp")
        function tap.packet() end
        function tap.draw()
            if not finished and not in_gui then finish_all() end
            io.stdout:write("\n=== TCP-ENO and tcpcrypt: connections ===\n" .. table.concat(summary_lines(), "\n") .. "\n")
        end
    end)
end)

if in_gui and type(register_menu) == "function" and type(TextWindow) ~= "nil" then
    pcall(register_menu, "TCP-ENO and tcpcrypt/Connections", function()
        local win = TextWindow.new("TCP-ENO and tcpcrypt connections")
        win:set(table.concat(summary_lines(), "\n"))
    end, MENU_STAT_GENERIC)
end

-- ------------------------------------------------------------------ kind 69 in tcp.option
function p_eno.dissector(tvb, pinfo, tree)
    if DISPLAY and DISPLAY.num == pinfo.number and not DISPLAY.eno_done then
        DISPLAY.eno_done = true
        local ok, err = pcall(display_eno, tree)
        if not ok then
            pcall(function()
                local t = tree:add(p_eno, "tcpinc.lua internal problem")
                t:add_proto_expert_info(E["tcpcrypt-lua-error"], "tcpinc.lua internal problem caught: " .. tostring(err))
            end)
        end
        return tvb:len()
    end
    local ok, err = pcall(function()
        local n = tvb:len()
        if n < 2 then return end
        local first = tvb(0, 1):uint()
        local syn_form = current_syn_flag()
        if first == 69 then
            show_eno_option(tree, tvb, "rfc", syn_form)
        else
            -- some versions hand over the option without kind and length
            local raw = "\69" .. schar((n + 2) % 256) .. tvb(0, n):raw()
            show_eno_option(tree, bytes_tvb(raw, "ENO option"), "rfc", syn_form)
        end
    end)
    if not ok then
        pcall(function()
            local t = tree:add(p_eno, "tcpinc.lua internal problem")
            t:add_proto_expert_info(E["tcpcrypt-lua-error"], "tcpinc.lua internal problem caught: " .. tostring(err))
        end)
    end
    return tvb:len()
end

do
    local ok, tbl = pcall(DissectorTable.get, "tcp.option")
    if ok and tbl then
        tbl:add(69, p_eno)
    elseif type(report_failure) == "function" then
        -- older versions lack the table: the postdissector still decodes ENO state
        print("tcpinc.lua: no \"tcp.option\" dissector table in this Wireshark; ENO options are decoded by the postdissector only")
    end
end

-- in-line on claimed ports: swallow ciphertext of tcpcrypt connections (the postdissector
-- shows it), pass everything else to the port's previous dissector
local function swallow(tvb, pinfo, tree)
    local fi = fval("tcp.stream")
    local c = fi and conns[fi.value]
    if c then
        local sport = pinfo.src_port
        local from_x = sport == c.xport
        if c.xport == c.yport then from_x = ep_text(tostring(pinfo.src), sport) == c.x end
        local d = c.tc[from_x]
        if d and not d.plain then
            pinfo.cols.protocol = "tcpcrypt"
            return tvb:len()
        end
    end
    local orig = claimed_ports[pinfo.dst_port] or claimed_ports[pinfo.src_port]
    if orig then return orig:call(tvb, pinfo, tree) end
    return 0
end

function p_tc.dissector(tvb, pinfo, tree)
    if DISPLAY and DISPLAY.num == pinfo.number and not DISPLAY.tc_done then
        DISPLAY.tc_done = true
        local ok, err = pcall(display_tc, tree, pinfo)
        if not ok then
            pcall(function()
                local t = tree:add(p_tc, "tcpinc.lua internal problem")
                t:add_proto_expert_info(E["tcpcrypt-lua-error"], "tcpinc.lua internal problem caught: " .. tostring(err))
            end)
        end
        return tvb:len()
    end
    local ok, res = pcall(swallow, tvb, pinfo, tree)
    if ok then return res end
    return 0
end

-- Decode As for the application protocol inside tcpcrypt
pcall(function() DissectorTable.new("tcpcrypt.port", "tcpcrypt application (port)", ftypes.UINT16, base.DEC, "tcpcrypt") end)

-- claim payload of connections known to run tcpcrypt when no port dissector took it
local function heur(tvb, pinfo, tree)
    if DISPLAY then return false end -- plaintext being handed on: not ours
    local ok, res = pcall(function()
        local r = pkts[pinfo.number]
        if r and r.conn then
            local c = conns[r.conn]
            if c and c.tc[r.from_x] and not c.tc[r.from_x].plain then
                pinfo.cols.protocol = "tcpcrypt"
                return true
            end
        end
        if tvb:len() >= 8 then
            local magic = tvb(0, 4):uint()
            if magic == INIT1_MAGIC or magic == INIT2_MAGIC then
                local len = tvb(4, 4):uint()
                if len >= 9 and len <= 65536 then
                    pinfo.cols.protocol = "tcpcrypt"
                    return true
                end
            end
        end
        return false
    end)
    return ok and res or false
end
pcall(function() p_tc:register_heuristic("tcp", heur) end)

M.loaded = true
