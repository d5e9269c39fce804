#!/usr/bin/env node
// A webtorrent peer (bittorrent-protocol + ut_metadata) serving one generated torrent's info
// dictionary on loopback, for the metadata scenario.
//
//   node tests/interop/wt_seed.js --ip 127.1.1.70 --port 7870 [--size BYTES] [--duration 30]
//
// Prints one JSON line {"event":"seeding","info_hash","info_hex","info_len","addr"}, then
// {"event":"metadata_sent","pieces"} per connection that asked for metadata, and exits after
// --duration seconds or when stdin closes. Loopback addresses only.
import net from 'node:net'
import crypto from 'node:crypto'

const base = new URL('./node-wire/node_modules/', import.meta.url).pathname
const Protocol = (await import(base + 'bittorrent-protocol/index.js')).default
const utMetadata = (await import(base + 'ut_metadata/index.js')).default
const bencode = (await import(base + 'bencode/index.js')).default

const args = { ip: '127.1.1.70', port: 7870, size: 40000, duration: 30 }
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '')
  if (!(key in args)) { console.error(`wt_seed.js: unknown option ${process.argv[i]}`); process.exit(64) }
  args[key] = key === 'ip' ? process.argv[i + 1] : Number(process.argv[i + 1])
}
const octets = args.ip.split('.').map(Number)
if (octets.length !== 4 || octets[0] !== 127 || octets.includes(0)) {
  console.error(`wt_seed.js: ${args.ip}: only 127.x.y.z without a zero octet`)
  process.exit(64)
}

// An info dictionary of about --size bytes: piece hashes of a notional file.
const pieceCount = Math.max(1, Math.floor(args.size / 20))
const pieces = crypto.createHash('sha256').update('seed').digest()
const hashes = Buffer.alloc(pieceCount * 20)
for (let i = 0; i < pieceCount * 20; i++) hashes[i] = pieces[i % 32] ^ (i & 0xff)
const info = bencode.encode({
  length: pieceCount * 16384,
  name: Buffer.from('webtorrent-sample.bin'),
  'piece length': 16384,
  pieces: hashes
})
const infoHash = crypto.createHash('sha1').update(info).digest('hex')
const peerId = Buffer.from('-WW0000-' + crypto.randomBytes(6).toString('hex'))

const emit = (event, fields) => console.log(JSON.stringify({ event, ...fields }))

const server = net.createServer(socket => {
  const wire = new Protocol()
  socket.pipe(wire).pipe(socket)
  socket.on('error', () => {})
  wire.use(utMetadata(info))
  let requests = 0
  wire.on('extended', (ext) => { if (ext === 'ut_metadata') requests++ })
  wire.on('handshake', (ih) => {
    wire.handshake(ih, peerId, { dht: true })
  })
  socket.on('close', () => emit('connection_closed', { extended_messages: requests }))
})
server.listen(args.port, args.ip, () => {
  emit('seeding', { info_hash: infoHash, info_hex: Buffer.from(info).toString('hex'), info_len: info.length, addr: `${args.ip}:${args.port}` })
})
const stop = (reason) => { emit('exit', { reason }); process.exit(0) }
setTimeout(() => stop('duration'), args.duration * 1000)
process.stdin.on('end', () => stop('stdin closed'))
process.stdin.resume()
