package frontdoor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// write turns a write request into an outbox write and answers it as SFM
// would.
func (h *Handler) write(w http.ResponseWriter, r *http.Request, rt route, tenant string) {
	mode, ref := h.writeMode(r)
	if ref != nil {
		writeRefusal(w, ref)
		return
	}
	var body []byte
	if rt.op != streams.OpDelete {
		if body, ref = h.readBody(w, r); ref != nil {
			writeRefusal(w, ref)
			return
		}
	}
	opts := []producer.WriteOption{producer.WithMode(mode),
		producer.WithTraceContext(r.Header.Get(sfmapi.HeaderTraceparent), r.Header.Get(sfmapi.HeaderTracestate))}
	if id := r.Header.Get(sfmapi.HeaderRequestID); id != "" {
		opts = append(opts, producer.WithRequestID(id))
	}
	namespace := r.Header.Get(sfmapi.HeaderNamespace)
	p := h.cfg.Producer

	var (
		answer *pyObject // what SFM would answer, derived from the request
		res    producer.Result
		err    error
	)
	switch rt.op {
	case streams.OpStore:
		fields, ref := decodeBody(body, storeSchema)
		if ref != nil {
			writeRefusal(w, ref)
			return
		}
		coord := jsonString(fields["coord"])
		if ref := checkCoord(coord); ref != nil {
			writeRefusal(w, ref)
			return
		}
		memoryType := streams.MemoryEpisodic
		if raw, ok := fields["memory_type"]; ok {
			memoryType = jsonString(raw)
		}
		answer = new(pyObject).str("coord", coord).str("memory_type", memoryType)
		res, err = p.Store(r.Context(), producer.StoreRequest{Tenant: tenant, Namespace: namespace, Coord: coord,
			Payload: fields["payload"], MemoryType: memoryType}, opts...)
	case streams.OpDelete:
		if ref := checkCoord(rt.coord); ref != nil {
			writeRefusal(w, ref)
			return
		}
		answer = new(pyObject).str("coord", rt.coord).boolean("deleted", true)
		res, err = p.Delete(r.Context(), producer.DeleteRequest{Tenant: tenant, Namespace: namespace, Coord: rt.coord}, opts...)
	case streams.OpLink:
		fields, ref := decodeBody(body, linkSchema)
		if ref != nil {
			writeRefusal(w, ref)
			return
		}
		link := producer.LinkRequest{Tenant: tenant, Namespace: namespace,
			FromCoord: jsonString(fields["from_coord"]), ToCoord: jsonString(fields["to_coord"])}
		for _, c := range []string{link.FromCoord, link.ToCoord} {
			if ref := checkCoord(c); ref != nil {
				writeRefusal(w, ref)
				return
			}
		}
		if raw, ok := fields["link_type"]; ok {
			link.LinkType = jsonString(raw) // null reads as ""
		}
		if raw, ok := fields["strength"]; ok {
			s, _ := parseFloatField(raw) // checked by decodeBody
			link.Strength = &s
		}
		if raw, ok := fields["metadata"]; ok && raw[0] == '{' {
			link.Metadata = raw
		}
		linkType := link.LinkType
		if linkType == "" {
			linkType = producer.DefaultLinkType
		}
		answer = new(pyObject).str("from_coord", link.FromCoord).str("to_coord", link.ToCoord).
			str("link_type", linkType).boolean("ok", true)
		res, err = p.Link(r.Context(), link, opts...)
	}

	var queued *producer.QueuedError
	switch {
	case err == nil && mode == streams.ModeSync:
		writeJSON(w, max(res.Status, http.StatusOK), res.Body)
	case err == nil:
		writeJSON(w, http.StatusOK, answer.bytes())
	case errors.As(err, &queued):
		writeJSON(w, http.StatusAccepted, answer.boolean("queued", true).uint("stream_sequence", queued.Sequence).bytes())
	default:
		ref, retryAfter := h.failure(err, tenant, rt.op)
		if retryAfter != "" {
			w.Header().Set(sfmapi.HeaderRetryAfter, retryAfter)
		}
		writeRefusal(w, ref)
	}
}

// failure is the answer to a write the producer could not make, and its
// Retry-After ("" for none).
func (h *Handler) failure(err error, tenant string, op streams.Op) (*refusal, string) {
	var (
		rejected *producer.RejectedError
		invalid  *producer.InvalidRequestError
	)
	switch {
	case errors.As(err, &rejected) && rejected.Status != 0:
		// The memory API's own refusal, as it gave it.
		return &refusal{status: rejected.Status, body: rejected.Body}, ""
	case errors.As(err, &rejected):
		return refuse(http.StatusBadGateway, "the write could not be applied and is in the dead-letter stream: "+rejected.Reason), ""
	case errors.As(err, &invalid):
		return refuse(http.StatusBadRequest, fmt.Sprintf("%s: %s", invalid.Field, invalid.Reason)), ""
	case errors.Is(err, tenancy.ErrInvalidTenant):
		return refuse(http.StatusBadRequest, err.Error()), ""
	case errors.Is(err, producer.ErrPayloadTooLarge):
		return refuse(http.StatusRequestEntityTooLarge, "the write is larger than the outbox takes"), ""
	case errors.Is(err, producer.ErrTenantBacklogFull):
		return refuse(http.StatusTooManyRequests, fmt.Sprintf("tenant %q has as many %s writes waiting in the outbox as its quota allows; retry later", tenant, op)), retryBacklogFull
	case errors.Is(err, producer.ErrOutboxFull):
		return refuse(http.StatusServiceUnavailable, "the outbox is full; retry later"), retryOutboxFull
	}
	// NATS unreachable, a publish timeout, a full background buffer, a
	// closing producer, a caller that left: nothing to fix in the request.
	h.cfg.Log.Warn().Err(err).Str("tenant", tenant).Str("op", string(op)).Msg("front door: write not stored")
	return refuse(http.StatusServiceUnavailable, "the outbox is unavailable; retry later"), retryBusy
}

// jsonString reads a JSON string checked by decodeBody; null reads as "".
func jsonString(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}
