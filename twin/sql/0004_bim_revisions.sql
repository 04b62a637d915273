-- Campus Twin schema, version 4: what BIM revisions need to be diffed and shown on the map.
-- Georeference of a site (IfcMapConversion), where a room's footprint came from and the
-- file's own quantities, where a device id came from, and whether an import changed anything.

ALTER TABLE sites
    ADD COLUMN IF NOT EXISTS map_crs text,
    ADD COLUMN IF NOT EXISTS map_eastings double precision,
    ADD COLUMN IF NOT EXISTS map_northings double precision,
    ADD COLUMN IF NOT EXISTS map_orthogonal_height double precision,
    ADD COLUMN IF NOT EXISTS map_x_axis_abscissa double precision,
    ADD COLUMN IF NOT EXISTS map_x_axis_ordinate double precision,
    ADD COLUMN IF NOT EXISTS map_scale double precision;

ALTER TABLE rooms
    ADD COLUMN IF NOT EXISTS geometry text NOT NULL DEFAULT 'body'
        CHECK (geometry IN ('body', 'footprint', 'bounding_box', 'none')),
    ADD COLUMN IF NOT EXISTS quantity_area_m2 double precision,
    ADD COLUMN IF NOT EXISTS quantity_height_m double precision;
UPDATE rooms SET geometry = 'none' WHERE footprint IS NULL AND geometry <> 'none';

ALTER TABLE devices
    ADD COLUMN IF NOT EXISTS id_source text NOT NULL DEFAULT 'pset'
        CHECK (id_source IN ('pset', 'tag', 'derived'));
UPDATE devices SET id_source = 'derived' WHERE device_id LIKE 'IFC-%' AND id_source <> 'derived';

ALTER TABLE bim_imports ADD COLUMN IF NOT EXISTS changed boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS bim_imports_site ON bim_imports (site_id, imported_at DESC);
