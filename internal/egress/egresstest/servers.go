package egresstest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Ports the servers listen on, on every address of the namespace (IPv4
// and IPv6).
const (
	PortHTTPS = 443
	PortHTTP  = 80
	PortEcho  = 8022 // TCP echo
	PortUDP   = 9999 // UDP, records and drops every datagram
	PortDNS   = 53   // UDP and TCP, records and never answers
)

// Hits counts what reached each server: TCP connections accepted, UDP
// datagrams received. A count that stays zero shows nothing got there.
type Hits struct {
	HTTPS int64
	HTTP  int64
	Echo  int64
	UDP   int64
	DNS   int64 // UDP datagrams and TCP connections on port 53
}

// Reply is the JSON body the HTTP and HTTPS servers answer every request
// with: what they saw of it.
type Reply struct {
	Host   string `json:"host"`   // the Host header
	Path   string `json:"path"`   // the request's path
	SNI    string `json:"sni"`    // the TLS server name; empty over HTTP
	Remote string `json:"remote"` // the connection's source address
	Local  string `json:"local"`  // the address it came to: which Net, which of its addresses
}

// hits is the servers' live counters.
type hits struct{ https, http, echo, udp, dns atomic.Int64 }

func (h *hits) snapshot() Hits {
	return Hits{HTTPS: h.https.Load(), HTTP: h.http.Load(), Echo: h.echo.Load(), UDP: h.udp.Load(), DNS: h.dns.Load()}
}

// servers are the namespace's listeners and what serves them.
type servers struct {
	https, http, echo, dnsTCP net.Listener
	udp, dns                  net.PacketConn
	web                       []*http.Server
	conns                     sync.Map // echo connections, closed on stop
	wg                        sync.WaitGroup
}

// listen opens every listener; it runs inside the namespace.
func (s *servers) listen() error {
	var err error
	tcp := func(port int) net.Listener {
		var ln net.Listener
		if err == nil {
			ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		}
		return ln
	}
	udp := func(port int) net.PacketConn {
		var pc net.PacketConn
		if err == nil {
			pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		}
		return pc
	}
	s.https, s.http, s.echo, s.dnsTCP = tcp(PortHTTPS), tcp(PortHTTP), tcp(PortEcho), tcp(PortDNS)
	s.udp, s.dns = udp(PortUDP), udp(PortDNS)
	if err != nil {
		s.close()
		return fmt.Errorf("listen: %w", err)
	}
	return nil
}

// serve starts every server; it runs outside the namespace.
func (s *servers) serve(h *hits, cert tls.Certificate) {
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	// Probes that break off handshakes are what tests do: no log of them.
	quiet := log.New(io.Discard, "", 0)
	s.web = []*http.Server{
		{Handler: http.HandlerFunc(reply), ReadHeaderTimeout: 10 * time.Second, ErrorLog: quiet},
		{Handler: http.HandlerFunc(reply), ReadHeaderTimeout: 10 * time.Second, ErrorLog: quiet},
	}
	s.goServe(func() { _ = s.web[0].Serve(tls.NewListener(counting{s.https, &h.https}, tlsConf)) })
	s.goServe(func() { _ = s.web[1].Serve(counting{s.http, &h.http}) })
	s.goServe(func() { s.serveEcho(counting{s.echo, &h.echo}) })
	s.goServe(func() { sink(counting{s.dnsTCP, &h.dns}) })
	s.goServe(func() { drain(s.udp, &h.udp) })
	s.goServe(func() { drain(s.dns, &h.dns) })
}

func (s *servers) goServe(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// stop closes every listener and connection and waits for the servers.
func (s *servers) stop() {
	for _, w := range s.web {
		_ = w.Close()
	}
	s.close()
	s.conns.Range(func(c, _ any) bool {
		_ = c.(net.Conn).Close()
		return true
	})
	s.wg.Wait()
}

func (s *servers) close() {
	for _, c := range []io.Closer{s.https, s.http, s.echo, s.dnsTCP, s.udp, s.dns} {
		if c != nil {
			_ = c.Close()
		}
	}
}

func (s *servers) serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.conns.Store(c, nil)
		s.goServe(func() {
			defer s.conns.Delete(c)
			defer c.Close()
			_, _ = io.Copy(c, c)
		})
	}
}

// sink accepts connections and closes them at once, until ln is closed.
func sink(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// drain receives every datagram on pc, counting them, until pc is closed.
func drain(pc net.PacketConn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	for {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		n.Add(1)
	}
}

func reply(w http.ResponseWriter, r *http.Request) {
	rep := Reply{Host: r.Host, Path: r.URL.Path, Remote: r.RemoteAddr}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		rep.Local = a.String()
	}
	if r.TLS != nil {
		rep.SNI = r.TLS.ServerName
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

// counting counts the connections its listener accepts.
type counting struct {
	net.Listener
	n *atomic.Int64
}

func (c counting) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err == nil {
		c.n.Add(1)
	}
	return conn, err
}
