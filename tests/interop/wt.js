#!/usr/bin/env node
// Loopback harness for webtorrent's bittorrent-dht: N nodes, JSON lines on stdout.
//
// Node i binds BASE+i (last IPv4 octet incremented) at PORT; with --ipv6 every node binds
// [::1]:PORT+i instead (bittorrent-dht has no real IPv6 support: its compact node lists are
// IPv4-only, see README.md). The default public routers are never used: every node is created
// with bootstrap:false, then given the --bootstrap contacts plus its siblings (unless --no-mesh)
// and bootstrapped through its RPC layer's populate (a find_node walk towards its own id).
//
// Usage: node wt.js [options] [actions]
//   --nodes N (1)  --base IP (127.1.1.40)  --port P (7000)  --ipv6  --ids HEX,HEX,...
//   --bootstrap IP:PORT[,IP:PORT...] (repeatable)  --no-mesh  --duration S (60)
//   --ready-timeout S (20)  --min-table K (default min(8, siblings + contacts))
//   --lookup-timeout S (15)  --serve  --pkt  --incoming
// Actions (flags, or stdin lines in --serve mode without the dashes; @N picks the node, default 0
// for announce/put/query/add-node and the last node for get-peers/get):
//   --announce HEX[:PORT][@N]   --get-peers HEX[@N]   --dump-table [N]   --node-ids
//   --add-node IP:PORT[@N]      --put TEXT[@N]        --get HEX[@N]      --sleep S
//   --query "IP:PORT METHOD [ARG...][@N]"  sends one KRPC query straight to IP:PORT, METHOD one of
//       ping | find_node TARGET | get_peers IH | announce_peer IH PORT | get TARGET |
//       sample_infohashes TARGET | any other name (sent with only an id)
//     announce_peer uses the token of the last get_peers answer from IP:PORT (one is fetched
//     first if there is none), or the token given as a third argument: HEX, or "bad" for 8
//     random bytes (announce_peer IH PORT bad).
//   bootstrap[@N] (stdin only): run the populate walk again.   quit (stdin only)
// Events: ready, ids, table, announce, peers, put, item, reply, incoming_announce,
//   incoming_get_peers (--incoming), pkt (--pkt: {node, dir, peer, hex}), done, error, exit.
'use strict'

const path = require('path')
const dgram = require('dgram')
const net = require('net')
const readline = require('readline')
const { pathToFileURL } = require('url')

const T0 = process.hrtime.bigint()
const now = () => Math.round(Number(process.hrtime.bigint() - T0) / 1e6) / 1000
const emit = (event, fields = {}) =>
  process.stdout.write(JSON.stringify({ event, t: now(), ...fields }) + '\n')
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const fmtEp = (host, port) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)

function parseEp (text) {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) || /^([0-9.]+):(\d+)$/.exec(text)
  if (!m || !net.isIP(m[1])) throw new Error(`bad address ${text} (want IP:PORT or [IPv6]:PORT)`)
  const loop = m[1] === '::1' || (net.isIPv4(m[1]) && m[1].startsWith('127.'))
  if (!loop) throw new Error(`${text}: only loopback addresses are allowed`)
  if (net.isIPv4(m[1]) && m[1].split('.').some(o => Number(o) === 0)) {
    throw new Error(`${text}: use a loopback address without a zero octet, e.g. 127.1.1.2`)
  }
  return { host: m[1], port: Number(m[2]) }
}

function hashArg (text) {
  if (!/^[0-9a-fA-F]{40}$/.test(text)) throw new Error(`bad hash ${text} (want 40 hex digits)`)
  return text.toLowerCase()
}

// Buffers become strings when printable, else {hex}; used for decoded KRPC answers.
function jsonable (v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    const b = Buffer.from(v)
    return /^[\x20-\x7e]*$/.test(b.toString('latin1')) ? b.toString('latin1') : { hex: b.toString('hex') }
  }
  if (Array.isArray(v)) return v.map(jsonable)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]))
  }
  return v
}

function parseArgs (argv) {
  const o = {
    nodes: 1, base: '127.1.1.40', port: 7000, ipv6: false, ids: [], bootstrap: [], noMesh: false,
    duration: 60, readyTimeout: 20, minTable: null, lookupTimeout: 15, serve: false, pkt: false,
    incoming: false, actions: []
  }
  const actionFlags = ['announce', 'get-peers', 'add-node', 'put', 'get', 'sleep', 'query']
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--nodes') o.nodes = Number(val())
    else if (a === '--base') o.base = val()
    else if (a === '--port') o.port = Number(val())
    else if (a === '--ipv6') o.ipv6 = true
    else if (a === '--ids') o.ids = val().split(',').map(hashArg)
    else if (a === '--bootstrap') o.bootstrap.push(...val().split(',').filter(Boolean))
    else if (a === '--no-mesh') o.noMesh = true
    else if (a === '--duration') o.duration = Number(val())
    else if (a === '--ready-timeout') o.readyTimeout = Number(val())
    else if (a === '--min-table') o.minTable = Number(val())
    else if (a === '--lookup-timeout') o.lookupTimeout = Number(val())
    else if (a === '--serve') o.serve = true
    else if (a === '--pkt') o.pkt = true
    else if (a === '--incoming') o.incoming = true
    else if (a === '--node-ids') o.actions.push('node-ids')
    else if (a === '--dump-table') {
      o.actions.push(/^\d+$/.test(argv[i + 1] || '') ? `dump-table@${argv[++i]}` : 'dump-table')
    } else if (a.startsWith('--') && actionFlags.includes(a.slice(2))) o.actions.push(`${a.slice(2)} ${val()}`)
    else if (a === '-h' || a === '--help') {
      process.stdout.write(require('fs').readFileSync(__filename, 'utf8').split('\n')
        .filter(l => l.startsWith('//')).map(l => l.slice(3)).join('\n') + '\n')
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  o.bootstrap.forEach(parseEp)
  return o
}

class Harness {
  constructor (DHT, o) {
    this.o = o
    this.tokens = new Map() // "ip:port" -> last token it gave us
    this.nodes = []
    const base = o.base.split('.').map(Number)
    for (let i = 0; i < o.nodes; i++) {
      let host, port
      if (o.ipv6) {
        host = '::1'
        port = o.port + i
      } else {
        const last = base[3] + i
        if (base[0] !== 127 || base.includes(0) || last < 1 || last > 254) {
          throw new Error(`node ${i}: want a loopback address without a zero octet`)
        }
        host = `${base[0]}.${base[1]}.${base[2]}.${last}`
        port = o.port
      }
      const opts = { bootstrap: false }
      if (o.ids[i]) opts.nodeId = Buffer.from(o.ids[i], 'hex')
      if (o.ipv6) opts.socket = dgram.createSocket('udp6')
      const dht = new DHT(opts)
      const n = { index: i, host, port, dht, peers: new Map() }
      dht.on('peer', (peer, ih) => {
        const key = Buffer.from(ih).toString('hex')
        if (!n.peers.has(key)) n.peers.set(key, new Set())
        n.peers.get(key).add(fmtEp(peer.host, peer.port))
      })
      dht.on('announce', (peer, ih, from) => emit('incoming_announce', {
        node: i, from: from ? from.host : null, port: peer.port, info_hash: Buffer.from(ih).toString('hex')
      }))
      dht.on('get_peers', ih => {
        if (o.incoming) emit('incoming_get_peers', { node: i, info_hash: Buffer.from(ih).toString('hex') })
      })
      dht.on('warning', e => emit('warning', { node: i, warning: String(e && e.message) }))
      dht.on('error', e => emit('error', { node: i, error: String(e && e.message) }))
      if (o.pkt) this.tap(n)
      this.nodes.push(n)
    }
  }

  // Report every datagram the node's UDP socket receives or sends.
  tap (n) {
    const sock = n.dht._rpc.socket.socket
    sock.on('message', (buf, rinfo) =>
      emit('pkt', { node: n.index, dir: 'in', peer: fmtEp(rinfo.address, rinfo.port), hex: buf.toString('hex') }))
    const send = sock.send.bind(sock)
    sock.send = (buf, off, len, port, host, cb) => {
      emit('pkt', { node: n.index, dir: 'out', peer: fmtEp(host, port), hex: Buffer.from(buf).subarray(off, off + len).toString('hex') })
      return send(buf, off, len, port, host, cb)
    }
  }

  describe (n) {
    return {
      index: n.index,
      addr: fmtEp(n.host, n.port),
      id: n.dht.nodeId.toString('hex'),
      table: n.dht._rpc.nodes.count()
    }
  }

  populate (n) {
    const id = n.dht._rpc.id
    return new Promise(resolve =>
      n.dht._rpc.populate(id, { q: 'find_node', a: { id, target: id } }, (err, count) => resolve({ err, count })))
  }

  async start () {
    await Promise.all(this.nodes.map(n => new Promise((resolve, reject) => {
      n.dht.once('error', reject)
      n.dht.listen(n.port, n.host, resolve)
    })))
    const contacts = this.o.bootstrap.map(parseEp)
    for (const n of this.nodes) {
      const sibs = this.o.noMesh ? [] : this.nodes.filter(m => m !== n).map(m => ({ host: m.host, port: m.port }))
      n.dht._rpc.bootstrap = contacts.concat(sibs)
    }
    const k = this.o.minTable ?? Math.min(8, (this.o.noMesh ? 0 : this.nodes.length - 1) + contacts.length)
    const walks = await Promise.all(this.nodes.map(async n => {
      const t = now()
      const r = await this.populate(n)
      return { walk: Math.round((now() - t) * 1000) / 1000, visited: r.count }
    }))
    const end = Date.now() + this.o.readyTimeout * 1000
    let complete = false
    while (Date.now() < end) {
      if (this.nodes.every(n => n.dht._rpc.nodes.count() >= k)) { complete = true; break }
      await sleep(100)
    }
    emit('ready', {
      nodes: this.nodes.map((n, i) => ({ ...this.describe(n), ...walks[i] })), complete, min_table: k
    })
  }

  nodeArg (text, dflt) {
    let i = dflt
    const at = text.lastIndexOf('@')
    if (at >= 0) {
      i = Number(text.slice(at + 1))
      text = text.slice(0, at)
    }
    if (!(i >= 0 && i < this.nodes.length)) throw new Error(`no node ${i}`)
    return [text.trim(), this.nodes[i]]
  }

  withTimeout (promise) {
    return Promise.race([promise, sleep(this.o.lookupTimeout * 1000).then(() => ({ timeout: true }))])
  }

  query (n, peer, q, a) {
    return new Promise(resolve => {
      const msg = { q, a: { id: n.dht._rpc.id, ...a } }
      n.dht._rpc.query(peer, msg, (err, res) => resolve({ err, res }))
    })
  }

  async run (cmd) {
    const sp = cmd.indexOf(' ')
    const word = sp < 0 ? cmd : cmd.slice(0, sp)
    const rest = sp < 0 ? '' : cmd.slice(sp + 1).trim()
    if (word === 'dump-table' || word.startsWith('dump-table@')) {
      const sel = word.includes('@') ? [this.nodeArg(word, 0)[1]] : this.nodes
      for (const n of sel) {
        emit('table', {
          node: n.index,
          id: n.dht.nodeId.toString('hex'),
          entries: n.dht._rpc.nodes.toArray().map(c => ({ id: c.id.toString('hex'), addr: fmtEp(c.host, c.port) }))
        })
      }
    } else if (word === 'node-ids') {
      emit('ids', { nodes: this.nodes.map(n => this.describe(n)) })
    } else if (word === 'announce') {
      const [spec, n] = this.nodeArg(rest, 0)
      const [ih, port] = spec.split(':')
      const p = port ? Number(port) : n.port
      const t = now()
      const r = await this.withTimeout(new Promise(resolve => n.dht.announce(hashArg(ih), p, err => resolve({ err }))))
      emit('announce', {
        node: n.index, info_hash: hashArg(ih), port: p, complete: !r.timeout && !r.err,
        error: r.err ? String(r.err.message) : undefined, elapsed: Math.round((now() - t) * 1000) / 1000
      })
    } else if (word === 'get-peers') {
      const [spec, n] = this.nodeArg(rest, this.nodes.length - 1)
      const ih = hashArg(spec)
      n.peers.delete(ih)
      const t = now()
      const r = await this.withTimeout(new Promise(resolve => n.dht.lookup(ih, (err, visited) => resolve({ err, visited }))))
      emit('peers', {
        node: n.index, info_hash: ih, complete: !r.timeout && !r.err, visited: r.visited,
        elapsed: Math.round((now() - t) * 1000) / 1000, peers: [...(n.peers.get(ih) || [])].sort()
      })
    } else if (word === 'add-node') {
      const [spec, n] = this.nodeArg(rest, 0)
      n.dht.addNode(parseEp(spec))
    } else if (word === 'bootstrap' || word.startsWith('bootstrap@')) {
      const [, n] = this.nodeArg(word, 0)
      const t = now()
      const r = await this.populate(n)
      emit('bootstrap', { node: n.index, visited: r.count, elapsed: Math.round((now() - t) * 1000) / 1000, table: n.dht._rpc.nodes.count() })
    } else if (word === 'put') {
      const [spec, n] = this.nodeArg(rest, 0)
      const t = now()
      const r = await this.withTimeout(new Promise(resolve =>
        n.dht.put({ v: Buffer.from(spec) }, (err, key, count) => resolve({ err, key, count }))))
      emit('put', {
        node: n.index, target: r.key ? Buffer.from(r.key).toString('hex') : null, num_success: r.count,
        complete: !r.timeout && !r.err, elapsed: Math.round((now() - t) * 1000) / 1000
      })
    } else if (word === 'get') {
      const [spec, n] = this.nodeArg(rest, this.nodes.length - 1)
      const t = now()
      const r = await this.withTimeout(new Promise(resolve => n.dht.get(hashArg(spec), (err, res) => resolve({ err, res }))))
      emit('item', {
        node: n.index, target: hashArg(spec), value: r.res ? jsonable(r.res.v) : null,
        elapsed: Math.round((now() - t) * 1000) / 1000
      })
    } else if (word === 'query') {
      const [spec, n] = this.nodeArg(rest, 0)
      const [ep, method, ...params] = spec.split(/\s+/)
      const peer = parseEp(ep)
      const key = fmtEp(peer.host, peer.port)
      const a = {}
      if (method === 'find_node' || method === 'get' || method === 'sample_infohashes') a.target = Buffer.from(hashArg(params[0]), 'hex')
      if (method === 'get_peers' || method === 'announce_peer') a.info_hash = Buffer.from(hashArg(params[0]), 'hex')
      if (method === 'announce_peer') {
        if (!this.tokens.has(key)) {
          const g = await this.query(n, peer, 'get_peers', { info_hash: a.info_hash })
          if (g.res && g.res.r && g.res.r.token) this.tokens.set(key, g.res.r.token)
        }
        a.port = Number(params[1] || n.port)
        a.token = this.tokens.get(key) || Buffer.from('none')
        // An explicit third argument replaces the token: hex bytes, or "bad" (8 random bytes).
        if (params[2] === 'bad') a.token = require('crypto').randomBytes(8)
        else if (params[2]) a.token = Buffer.from(params[2], 'hex')
      }
      const t = now()
      const { err, res } = await this.query(n, peer, method, a)
      if (res && res.r && res.r.token) this.tokens.set(key, res.r.token)
      emit('reply', {
        node: n.index, from: key, method, ok: !err, elapsed: Math.round((now() - t) * 1000) / 1000,
        error: err ? String(err.message) : undefined, code: err && err.code, r: res && res.r ? jsonable(res.r) : undefined
      })
    } else if (word === 'sleep') {
      await sleep(Number(rest) * 1000)
    } else if (word === 'quit') {
      return false
    } else {
      throw new Error(`unknown command ${word}`)
    }
    return true
  }

  async command (cmd) {
    try {
      const go = await this.run(cmd)
      emit('done', { cmd })
      return go
    } catch (e) {
      emit('error', { cmd, error: String(e && e.message) })
      return true
    }
  }
}

async function main () {
  let o
  try {
    o = parseArgs(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`wt.js: ${e.message}\n`)
    process.exit(2)
  }
  const finish = reason => {
    emit('exit', { reason })
    process.exit(0)
  }
  setTimeout(() => finish('duration'), o.duration * 1000)
  const entry = path.join(__dirname, 'node', 'node_modules', 'bittorrent-dht', 'index.js')
  const { default: DHT } = await import(pathToFileURL(entry).href)
  const h = new Harness(DHT, o)
  await h.start()
  for (const a of o.actions) await h.command(a)
  if (!o.serve) return finish('actions done')
  const rl = readline.createInterface({ input: process.stdin })
  const lines = []
  let wake = null
  let closed = false
  rl.on('line', l => { lines.push(l); if (wake) wake() })
  rl.on('close', () => { closed = true; if (wake) wake() })
  for (;;) {
    while (lines.length) {
      const l = lines.shift().trim()
      if (l && !(await h.command(l))) return finish('quit')
    }
    if (closed) return finish('stdin closed')
    await new Promise(resolve => { wake = resolve })
    wake = null
  }
}

main().catch(e => {
  emit('error', { error: String(e && e.stack) })
  process.exit(1)
})
